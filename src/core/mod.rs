//! The loop: ready queue, timer heap, run loop, handles, fd watchers, debug reports, the
//! watchdog and metrics.

pub mod bytes_read;
pub mod closed_sockets;
pub mod completions;
pub mod create_task;
pub mod debug;
pub mod event_loop;
pub mod fastcall;
pub mod gil_cell;
pub mod handle;
pub mod handle_context;
pub mod io;
pub mod io_table;
pub mod kept_bound;
pub mod metrics;
pub mod monitoring;
pub mod progress;
pub mod run;
pub mod scheduling;
pub mod stdlib;
pub mod timer_heap;
pub mod versions;
pub mod watchdog;
