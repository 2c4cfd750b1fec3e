//! Starting a child process as libuv and glibc's `posix_spawn` do: the child is a
//! `clone(CLONE_VM | CLONE_VFORK)` of the calling thread, running on a stack of its own, that
//! sets itself up with async-signal-safe calls only (no allocation, no lock: it shares the
//! parent's memory, whose other threads keep running) and execs. The parent sleeps until then,
//! so no page table is copied, whatever the size of the process. A failure in the child is
//! written as (stage, errno) to a close-on-exec pipe the parent reads after: end of file means
//! the exec succeeded.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::cvt;

/// What the child does before its exec, all decided by the parent.
pub struct ChildPlan<'a> {
    /// The paths to try, in order (the PATH search is done by the caller).
    pub executables: &'a [&'a CStr],
    /// NULL-terminated, pointing into strings the caller keeps alive.
    pub argv: &'a [*const c_char],
    /// NULL-terminated; None keeps the parent's environment (read at exec time).
    pub envp: Option<&'a [*const c_char]>,
    pub cwd: Option<&'a CStr>,
    /// The child's fds 0, 1, 2: a parent fd to put there, or -1 to inherit the parent's.
    pub stdio: [RawFd; 3],
    /// Closes every fd from 3 up but `keep_fds` (sorted) and the stdio plan's.
    pub close_fds: bool,
    pub keep_fds: &'a [RawFd],
    /// SIGPIPE and SIGXFSZ back to their default action (Python ignores them).
    pub restore_signals: bool,
    pub new_session: bool,
    pub process_group: Option<libc::pid_t>,
    pub groups: Option<&'a [libc::gid_t]>,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub umask: Option<libc::mode_t>,
}

/// Where the child failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Stage {
    Stdio = 1,
    Chdir,
    Session,
    ProcessGroup,
    Groups,
    Gid,
    Uid,
    PassFds,
    Exec,
}

impl Stage {
    fn from_raw(raw: i32) -> Option<Stage> {
        use Stage::*;
        [
            Stdio,
            Chdir,
            Session,
            ProcessGroup,
            Groups,
            Gid,
            Uid,
            PassFds,
            Exec,
        ]
        .into_iter()
        .find(|stage| *stage as i32 == raw)
    }
}

/// The child could not exec: it has been reaped.
#[derive(Debug)]
pub struct ChildFailed {
    pub stage: Stage,
    pub errno: i32,
}

/// The started child's pid, or where and why it failed before its exec.
pub type Spawned = Result<libc::pid_t, ChildFailed>;

// The child's stack: its frames are a few hundred bytes (the fallback fd loop's included).
const CHILD_STACK_SIZE: usize = 64 * 1024;

/// What the child reads: the plan, and what the parent added to it.
struct ChildArgs<'a> {
    plan: &'a ChildPlan<'a>,
    keep_fds: &'a [RawFd],
    max_fd: RawFd,
    error_pipe: RawFd,
}

/// Starts the child described by `plan`. `Err` is a failure of the parent (no child);
/// `Ok(Err(..))` a child that failed before its exec.
pub fn spawn(plan: &ChildPlan<'_>) -> io::Result<Spawned> {
    let (error_read, error_write) = error_pipe()?;
    // Everything the child needs that costs an allocation or a lookup is made here.
    let mut keep_fds: Vec<RawFd> = plan.keep_fds.to_vec();
    keep_fds.push(error_write.as_raw_fd());
    keep_fds.sort_unstable();
    keep_fds.dedup();
    let max_fd = if plan.close_fds { max_fd() } else { 0 };
    let args = ChildArgs {
        plan,
        keep_fds: &keep_fds,
        max_fd,
        error_pipe: error_write.as_raw_fd(),
    };
    let mut stack = vec![0u8; CHILD_STACK_SIZE];
    // The stack grows down on every architecture Linux runs this on; 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK_SIZE) & !15;

    // Every signal blocked across the clone: a handler of the parent's must never run in the
    // child, which shares its memory. The child resets the handlers before unblocking.
    let all = signal_set(true);
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: valid sets; pthread_sigmask fails only for a bad `how`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, old.as_mut_ptr()) };
    // SAFETY: `child_main` only reads `args` and makes async-signal-safe calls on its own
    // stack; with CLONE_VFORK this thread sleeps until the child has exec'd or exited, so
    // `args` and `stack` outlive its use of them.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ChildArgs as *mut c_void,
        )
    };
    let clone_error = io::Error::last_os_error();
    // SAFETY: `old` was filled by the first call.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut()) };
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    drop(error_write);
    match read_failure(&error_read) {
        None => Ok(Ok(pid)),
        Some(failed) => {
            reap(pid);
            Ok(Err(failed))
        }
    }
}

/// A close-on-exec pipe whose write end is above 2, so the child's stdio plan cannot land on
/// it (a parent with fd 0, 1 or 2 closed gets those numbers from pipe2).
fn error_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds has room for the two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if write.as_raw_fd() > 2 {
        return Ok((read, write));
    }
    let above = super::fd::dup_cloexec_above(write.as_raw_fd(), 3)?;
    Ok((read, above))
}

/// The highest fd number the fallback loop closes (when close_range is missing): the soft
/// limit on open files, as CPython's fallback uses.
fn max_fd() -> RawFd {
    let mut limit = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit fills the struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } != 0 {
        return 1024;
    }
    // SAFETY: filled by the successful call above.
    let soft = unsafe { limit.assume_init() }.rlim_cur;
    soft.min(RawFd::MAX as libc::rlim_t) as RawFd
}

fn signal_set(full: bool) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: both initialise the whole set.
    unsafe {
        if full {
            libc::sigfillset(set.as_mut_ptr());
        } else {
            libc::sigemptyset(set.as_mut_ptr());
        }
        set.assume_init()
    }
}

/// The (stage, errno) the child wrote, or None at end of file (it exec'd).
fn read_failure(pipe: &OwnedFd) -> Option<ChildFailed> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the unfilled rest of a live buffer.
        let n = unsafe {
            libc::read(
                pipe.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    if got == 0 {
        return None;
    }
    let stage = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some(ChildFailed {
        // A short or unknown record can only be a child that died mid-write: an exec failure
        // is the closest description.
        stage: Stage::from_raw(stage).unwrap_or(Stage::Exec),
        errno,
    })
}

/// Waits for the child that failed (it has exited already, or is about to).
fn reap(pid: libc::pid_t) {
    loop {
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(pid, ptr::null_mut(), 0) };
        if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child. Everything below runs in the child on its own stack, sharing the parent's memory:
// only async-signal-safe calls, no allocation, no panic (no indexing that could fail).
// ---------------------------------------------------------------------------------------------

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: the parent passed a ChildArgs that outlives the child's use of it.
    let args = unsafe { &*(arg as *const ChildArgs) };
    let (stage, errno) = match set_up_and_exec(args) {
        Err(failure) => failure,
        Ok(never) => match never {},
    };
    let mut record = [0u8; 8];
    let (left, right) = record.split_at_mut(4);
    left.copy_from_slice(&(stage as i32).to_ne_bytes());
    right.copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe; a failed write changes nothing we
    // could act on.
    unsafe {
        libc::write(args.error_pipe, record.as_ptr().cast(), record.len());
        libc::_exit(255)
    }
}

enum Never {}

fn errno() -> i32 {
    // SAFETY: the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn check(stage: Stage, ret: libc::c_long) -> Result<(), (Stage, i32)> {
    if ret < 0 {
        Err((stage, errno()))
    } else {
        Ok(())
    }
}

fn set_up_and_exec(args: &ChildArgs) -> Result<Never, (Stage, i32)> {
    let plan = args.plan;
    reset_signal_handlers(plan.restore_signals);
    for &fd in plan.keep_fds {
        // pass_fds are handed to the program: no longer close-on-exec.
        // SAFETY: plain syscall on the child's fd table.
        check(
            Stage::PassFds,
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }.into(),
        )?;
    }
    set_up_stdio(plan.stdio)?;
    // SAFETY (this block): plain syscalls on the child's own state, with pointers into
    // memory the parent keeps alive. Credentials are changed with the raw syscalls: glibc's
    // wrappers would signal the parent's other threads (the child has no others).
    unsafe {
        if let Some(cwd) = plan.cwd {
            check(Stage::Chdir, libc::chdir(cwd.as_ptr()).into())?;
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        if plan.new_session {
            check(Stage::Session, libc::setsid().into())?;
        }
        if let Some(pgid) = plan.process_group {
            check(Stage::ProcessGroup, libc::setpgid(0, pgid).into())?;
        }
        if let Some(groups) = plan.groups {
            let ret = libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
            check(Stage::Groups, ret)?;
        }
        if let Some(gid) = plan.gid {
            check(Stage::Gid, libc::syscall(libc::SYS_setregid, gid, gid))?;
        }
        if let Some(uid) = plan.uid {
            check(Stage::Uid, libc::syscall(libc::SYS_setreuid, uid, uid))?;
        }
    }
    if plan.close_fds {
        close_fds_but(args.keep_fds, args.max_fd);
    }
    // The child starts with no signal blocked, whatever the mask of the thread that spawned
    // it (libuv's rule): its handlers are all default or ignored by now.
    let empty = signal_set(false);
    // SAFETY: a valid set.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut()) };
    Err((Stage::Exec, exec_first(plan)))
}

/// Every handler the parent installed back to the default action (SIG_IGN stays, as exec
/// keeps it), so that no signal arriving before the exec runs Python's handler in the child.
fn reset_signal_handlers(restore_signals: bool) {
    // SAFETY (this function): sigaction with valid structs; refused signals (SIGKILL,
    // SIGSTOP, the C library's own) fail harmlessly.
    let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
    default.sa_sigaction = libc::SIG_DFL;
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let restore = restore_signals && (sig == libc::SIGPIPE || sig == libc::SIGXFSZ);
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(sig, ptr::null(), &mut current) } != 0 {
            continue;
        }
        let handler = current.sa_sigaction;
        if restore || (handler != libc::SIG_DFL && handler != libc::SIG_IGN) {
            unsafe { libc::sigaction(sig, &default, ptr::null_mut()) };
        }
    }
}

/// Puts each planned fd on 0, 1, 2. A source that is itself 0 or 1 would be overwritten by
/// an earlier dup2 (stderr=STDOUT when stdout was fd 0, say): it is moved above 2 first.
fn set_up_stdio(mut stdio: [RawFd; 3]) -> Result<(), (Stage, i32)> {
    for (target, source) in (0..).zip(stdio.iter_mut()).skip(1) {
        if (0..target).contains(source) {
            // SAFETY: duplicates an fd of the child's own table.
            let moved = unsafe { libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 3) };
            check(Stage::Stdio, moved.into())?;
            *source = moved;
        }
    }
    for (target, source) in (0..).zip(stdio) {
        // SAFETY (both): plain syscalls on the child's fd table.
        let ret = if source < 0 {
            0 // inherited as it is
        } else if source == target {
            // dup2 onto itself would keep its close-on-exec flag.
            unsafe { libc::fcntl(source, libc::F_SETFD, 0) }
        } else {
            unsafe { libc::dup2(source, target) }
        };
        check(Stage::Stdio, ret.into())?;
    }
    Ok(())
}

/// Closes fds 3 and up but `keep` (sorted): with close_range (Linux 5.9) over each gap, else
/// one by one up to `max_fd`.
fn close_fds_but(keep: &[RawFd], max_fd: RawFd) {
    let mut low: u32 = 3;
    let mut close_range_works = true;
    for fd in keep.iter().map(|&fd| fd as u32).chain([u32::MAX]) {
        if fd < low {
            continue;
        }
        if fd > low {
            // SAFETY: closes fds of the child's own table.
            let ret = unsafe { libc::syscall(libc::SYS_close_range, low, fd - 1, 0) };
            if ret < 0 {
                close_range_works = false;
                break;
            }
        }
        low = fd.saturating_add(1);
    }
    if !close_range_works {
        let mut keep = keep.iter().peekable();
        for fd in 3..max_fd {
            while keep.next_if(|&&kept| kept < fd).is_some() {}
            if keep.peek() != Some(&&fd) {
                // SAFETY: as above; EBADF for numbers not open is expected.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// Execs the first candidate that works; the errno to report otherwise: the first that is
/// not "no such file" (a candidate found but not executable says more), else the last.
fn exec_first(plan: &ChildPlan) -> i32 {
    extern "C" {
        static environ: *const *const c_char;
    }
    let argv = plan.argv.as_ptr();
    // SAFETY: the parent's environment pointer, read (not changed) as execv would.
    let envp = plan.envp.map_or(unsafe { environ }, |envp| envp.as_ptr());
    let mut reported = 0;
    let mut last = libc::ENOENT;
    for path in plan.executables {
        // SAFETY: NULL-terminated arrays of strings the parent keeps alive.
        unsafe { libc::execve(path.as_ptr(), argv, envp) };
        last = errno();
        if reported == 0 && last != libc::ENOENT && last != libc::ENOTDIR {
            reported = last;
        }
    }
    if reported != 0 {
        reported
    } else {
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(executable: &CStr, cwd: Option<&CStr>) -> Spawned {
        let argv = [executable.as_ptr(), ptr::null()];
        let plan = ChildPlan {
            executables: &[executable],
            argv: &argv,
            envp: None,
            cwd,
            stdio: [-1, -1, -1],
            close_fds: true,
            keep_fds: &[],
            restore_signals: true,
            new_session: false,
            process_group: None,
            groups: None,
            gid: None,
            uid: None,
            umask: None,
        };
        spawn(&plan).expect("the parent's part cannot fail here")
    }

    #[test]
    fn exec_success_failure_and_chdir_failure() {
        let pid = run(c"/bin/true", None).expect("/bin/true runs");
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);

        let failed = run(c"/nonexistent/program", None).unwrap_err();
        assert_eq!((failed.stage, failed.errno), (Stage::Exec, libc::ENOENT));
        let failed = run(c"/bin/true", Some(c"/nonexistent/dir")).unwrap_err();
        assert_eq!((failed.stage, failed.errno), (Stage::Chdir, libc::ENOENT));
    }
}
