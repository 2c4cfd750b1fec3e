//! The threads that call the C resolver, which blocks. Four, shared by every loop of the
//! process, started on first use, as libuv's pool (uvloop's resolver) is.

use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::{Arc, Condvar, Mutex};

use crate::sys::{getaddrinfo, AddrInfo, Hints, LookupError};

const WORKERS: usize = 4;

pub type Answer = Result<Vec<AddrInfo>, LookupError>;

pub struct Job {
    pub host: Option<CString>,
    pub service: Option<CString>,
    pub hints: Hints,
    /// Called on the worker thread with the answer.
    pub done: Box<dyn FnOnce(Answer) + Send>,
}

#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

struct Pool {
    queue: Arc<Queue>,
    /// The process that started the workers: a forked child has none of them.
    pid: u32,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn start() -> std::io::Result<Pool> {
    let queue = Arc::new(Queue::default());
    for _ in 0..WORKERS {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name("ferroloop-dns".into())
            .spawn(move || work(&queue))?;
    }
    Ok(Pool {
        queue,
        pid: std::process::id(),
    })
}

fn work(queue: &Queue) {
    crate::sys::name_this_thread(c"ferroloop-dns");
    loop {
        let job = {
            let Ok(mut jobs) = queue.jobs.lock() else {
                return;
            };
            loop {
                if let Some(job) = jobs.pop_front() {
                    break job;
                }
                jobs = match queue.ready.wait(jobs) {
                    Ok(jobs) => jobs,
                    Err(_) => return,
                };
            }
        };
        let answer = getaddrinfo(job.host.as_deref(), job.service.as_deref(), &job.hints);
        (job.done)(answer);
    }
}

/// Queues `job` for a worker; Err only if no thread could be started.
pub fn submit(job: Job) -> std::io::Result<()> {
    let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if pool.as_ref().is_none_or(|p| p.pid != std::process::id()) {
        // In a forked child the parent's workers are gone and their queue's lock may be held
        // forever: leave both behind.
        if let Some(stale) = pool.take() {
            std::mem::forget(stale);
        }
        *pool = Some(start()?);
    }
    let queue = &pool.as_ref().expect("started above").queue;
    queue
        .jobs
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push_back(job);
    queue.ready.notify_one();
    Ok(())
}
