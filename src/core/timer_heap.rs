//! The scheduled-timer queue: a min-heap on (deadline, insertion order).
//!
//! Timers with equal deadlines fire in the order they were scheduled (asyncio's heapq gives no
//! such promise, but code written against it never sees a different order from this one).
//! Cancelled timers are not searched for; the loop drops them when they reach the top, or
//! compacts the heap with `retain` when most of it is cancelled.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Entry<T> {
    when: f64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    // Reversed: BinaryHeap is a max-heap and the earliest deadline must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .when
            .total_cmp(&self.when)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

pub struct TimerHeap<T> {
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> TimerHeap<T> {
    pub fn push(&mut self, when: f64, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { when, seq, item });
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest deadline and its item.
    pub fn peek(&self) -> Option<(f64, &T)> {
        self.heap.peek().map(|e| (e.when, &e.item))
    }

    pub fn pop(&mut self) -> Option<(f64, T)> {
        self.heap.pop().map(|e| (e.when, e.item))
    }

    /// Removes every item for which `keep` is false, handing it to `removed` (so a caller can
    /// release it outside whatever borrow it holds), and rebuilds the heap in O(n).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool, mut removed: impl FnMut(T)) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            if keep(&entry.item) {
                kept.push(entry);
            } else {
                removed(entry.item);
            }
        }
        self.heap = BinaryHeap::from(kept);
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.heap.iter().map(|e| &e.item)
    }

    /// Empties the heap, handing every item to the caller.
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .map(|e| e.item)
            .collect()
    }

    /// Releases memory after a burst (100,000 timers that have all fired should not keep their
    /// slots for the life of the loop).
    pub fn shrink_if_sparse(&mut self) {
        if self.heap.capacity() > 1024 && self.heap.len() * 4 < self.heap.capacity() {
            self.heap.shrink_to(self.heap.len().max(1024));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order() {
        let mut heap = TimerHeap::default();
        for (when, name) in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (0.5, "z")] {
            heap.push(when, name);
        }
        let order: Vec<_> = std::iter::from_fn(|| heap.pop().map(|(_, n)| n)).collect();
        assert_eq!(order, ["z", "a", "b", "c"]);
    }

    #[test]
    fn equal_deadlines_keep_insertion_order() {
        let mut heap = TimerHeap::default();
        for i in 0..100 {
            heap.push(1.0, i);
        }
        let order: Vec<_> = std::iter::from_fn(|| heap.pop().map(|(_, n)| n)).collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn retain_compacts_and_reports_removed() {
        let mut heap = TimerHeap::default();
        for i in 0..10 {
            heap.push(10.0 - i as f64, i);
        }
        let mut removed = Vec::new();
        heap.retain(|i| i % 3 == 0, |i| removed.push(i));
        removed.sort();
        assert_eq!(removed, [1, 2, 4, 5, 7, 8]);
        assert_eq!(heap.peek(), Some((1.0, &9)));
        let order: Vec<_> = std::iter::from_fn(|| heap.pop().map(|(_, n)| n)).collect();
        assert_eq!(order, [9, 6, 3, 0]);
    }

    #[test]
    fn shrinks_after_a_burst() {
        let mut heap = TimerHeap::default();
        for i in 0..100_000 {
            heap.push(i as f64, i);
        }
        while heap.len() > 10 {
            heap.pop();
        }
        heap.shrink_if_sparse();
        assert!(heap.heap.capacity() <= 4096);
        assert_eq!(heap.drain().len(), 10);
        assert!(heap.is_empty());
    }

    #[test]
    fn infinite_and_negative_deadlines_order_sanely() {
        let mut heap = TimerHeap::default();
        heap.push(f64::INFINITY, "never");
        heap.push(-5.0, "past");
        heap.push(0.0, "now");
        let order: Vec<_> = std::iter::from_fn(|| heap.pop().map(|(_, n)| n)).collect();
        assert_eq!(order, ["past", "now", "never"]);
    }
}
