//! The scheduled-timer queue: a binary min-heap on deadlines, kept by exactly the algorithm of
//! Python's `heapq`, with `<` on the deadlines as its only comparison.
//!
//! asyncio keeps its timers with `heapq.heappush`/`heappop`/`heapify`, comparing
//! `TimerHandle`s by `_when < other._when`. The order timers come out in is therefore not
//! only "earliest first": timers with equal deadlines come out in whatever order heapq's
//! sifting leaves them, and a NaN deadline, never less than anything nor anything less than
//! it, sinks where the sifting puts it and runs when it surfaces at the top (asyncio takes a
//! NaN at the top as due: `nan >= end_time` is false). Doing the same steps on the same
//! comparisons gives the same order for every sequence of pushes, pops and compactions.
//!
//! Cancelled timers are not searched for; the loop drops them when they reach the top, or
//! compacts the heap with `retain` when most of it is cancelled.

pub struct TimerHeap<T> {
    heap: Vec<(f64, T)>,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        TimerHeap { heap: Vec::new() }
    }
}

impl<T> TimerHeap<T> {
    /// `heap[a] < heap[b]` as Python compares two float deadlines (false if either is NaN).
    #[inline]
    fn less(&self, a: usize, b: usize) -> bool {
        self.heap[a].0 < self.heap[b].0
    }

    /// heapq's `_siftdown`: the item at `pos` climbs towards `start` while it is less than its
    /// parent.
    fn sift_down(&mut self, start: usize, mut pos: usize) {
        while pos > start {
            let parent = (pos - 1) >> 1;
            if !self.less(pos, parent) {
                break;
            }
            self.heap.swap(pos, parent);
            pos = parent;
        }
    }

    /// heapq's `_siftup`: the item at `pos` goes all the way down to a leaf, each step taking
    /// the right child unless the left one is less than it (the test heapq makes), then
    /// climbs back as `sift_down` does.
    fn sift_up(&mut self, mut pos: usize) {
        let end = self.heap.len();
        let start = pos;
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !self.less(child, right) {
                child = right;
            }
            self.heap.swap(pos, child);
            pos = child;
            child = 2 * pos + 1;
        }
        self.sift_down(start, pos);
    }

    /// `heapq.heappush`.
    pub fn push(&mut self, when: f64, item: T) {
        self.heap.push((when, item));
        let last = self.heap.len() - 1;
        self.sift_down(0, last);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The item at the top (`heap[0]`) and its deadline.
    pub fn peek(&self) -> Option<(f64, &T)> {
        self.heap.first().map(|(when, item)| (*when, item))
    }

    /// `heapq.heappop`: the last item takes the top's place and is sifted.
    pub fn pop(&mut self) -> Option<(f64, T)> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.heap[0], last);
        self.sift_up(0);
        Some(top)
    }

    /// Removes every item for which `keep` is false, handing it to `removed` (so a caller can
    /// release it outside whatever borrow it holds), and rebuilds the heap from the others in
    /// their order as `heapq.heapify` does (asyncio's compaction).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool, mut removed: impl FnMut(T)) {
        let entries = std::mem::take(&mut self.heap);
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            if keep(&entry.1) {
                kept.push(entry);
            } else {
                removed(entry.1);
            }
        }
        self.heap = kept;
        for pos in (0..self.heap.len() / 2).rev() {
            self.sift_up(pos);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.heap.iter().map(|(_, item)| item)
    }

    /// Empties the heap, handing every item to the caller.
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.heap)
            .into_iter()
            .map(|(_, item)| item)
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

    const NAN: f64 = f64::NAN;

    fn pop_all<T>(heap: &mut TimerHeap<T>) -> Vec<T> {
        std::iter::from_fn(|| heap.pop().map(|(_, item)| item)).collect()
    }

    fn heap_of(deadlines: &[(f64, &'static str)]) -> TimerHeap<&'static str> {
        let mut heap = TimerHeap::default();
        for &(when, name) in deadlines {
            heap.push(when, name);
        }
        heap
    }

    #[test]
    fn pops_in_deadline_order() {
        let mut heap = heap_of(&[(3.0, "c"), (1.0, "a"), (2.0, "b"), (0.5, "z")]);
        assert_eq!(pop_all(&mut heap), ["z", "a", "b", "c"]);
    }

    // The expected orders below are what CPython's heapq gives for the same pushes, with
    // objects compared by their deadline alone (as asyncio's TimerHandle.__lt__ does).

    #[test]
    fn equal_deadlines_come_out_in_heapq_order() {
        let mut heap = heap_of(&[(1.0, "a"), (1.0, "b"), (1.0, "c"), (1.0, "d"), (1.0, "e")]);
        assert_eq!(pop_all(&mut heap), ["a", "c", "e", "b", "d"]);
    }

    #[test]
    fn nan_deadlines_sit_where_heapq_leaves_them() {
        let mut heap = heap_of(&[(1.0, "a"), (2.0, "b"), (3.0, "c"), (NAN, "n"), (0.5, "d")]);
        assert_eq!(pop_all(&mut heap), ["d", "a", "b", "n", "c"]);
        let mut heap = heap_of(&[(1.0, "a"), (NAN, "n"), (2.0, "b")]);
        assert_eq!(pop_all(&mut heap), ["a", "n", "b"]);
        let mut heap = heap_of(&[(NAN, "n"), (NAN, "m"), (1.0, "a")]);
        assert_eq!(pop_all(&mut heap), ["n", "m", "a"]);
        let mut heap = heap_of(&[(3.0, "a"), (2.0, "b"), (1.0, "c"), (NAN, "n"), (0.5, "d")]);
        assert_eq!(pop_all(&mut heap), ["d", "c", "b", "n", "a"]);
    }

    #[test]
    fn retain_compacts_as_heapify_does() {
        let mut heap = TimerHeap::default();
        for i in 0..10 {
            heap.push(10.0 - i as f64, i);
        }
        let mut removed = Vec::new();
        heap.retain(|i| i % 3 == 0, |i| removed.push(i));
        removed.sort();
        assert_eq!(removed, [1, 2, 4, 5, 7, 8]);
        assert_eq!(heap.peek(), Some((1.0, &9)));
        assert_eq!(pop_all(&mut heap), [9, 6, 3, 0]);
        let mut heap = heap_of(&[(2.0, "a"), (NAN, "n"), (1.0, "b"), (9.0, "x"), (0.5, "c")]);
        heap.retain(|name| *name != "x", drop);
        assert_eq!(pop_all(&mut heap), ["c", "b", "n", "a"]);
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
        let mut heap = heap_of(&[(f64::INFINITY, "never"), (-5.0, "past"), (0.0, "now")]);
        assert_eq!(pop_all(&mut heap), ["past", "now", "never"]);
    }
}
