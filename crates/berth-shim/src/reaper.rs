//! The shim reaps every child (it is a subreaper) on one thread and hands each
//! exit status to whoever waits for that pid, even if the exit came first.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// How many unclaimed exits the reaper keeps before it prunes stale ones.
const MAX_UNCLAIMED: usize = 256;
/// An exit unclaimed this long is nobody's.
const STALE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    exits: HashMap<i32, (i32, Instant)>,
    /// Bumped on every spawn, so that a spawn racing an ECHILD is never missed.
    generation: u64,
}

/// Collects exit codes of the shim's children.
#[derive(Default)]
pub struct Reaper {
    state: Mutex<State>,
    cond: Condvar,
}

/// The exit code as Docker reports it: the status, or 128+N for death by signal N.
pub fn exit_code(status: WaitStatus) -> Option<(i32, i32)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i32)),
        _ => None,
    }
}

impl Reaper {
    /// Starts the reaping thread.
    pub fn start() -> Arc<Self> {
        let reaper = Arc::new(Self::default());
        let r = reaper.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || r.run())
            .expect("spawn reaper thread");
        reaper
    }

    fn run(&self) {
        loop {
            let generation = self.state.lock().unwrap().generation;
            match waitpid(Pid::from_raw(-1), None) {
                Ok(status) => {
                    if let Some((pid, code)) = exit_code(status) {
                        let mut st = self.state.lock().unwrap();
                        // Exits nobody waits for (libcontainer's intermediate
                        // processes) must not pile up: past a bound, forget the
                        // ones unclaimed for a minute (a waiter claims in moments).
                        if st.exits.len() >= MAX_UNCLAIMED {
                            let now = Instant::now();
                            st.exits
                                .retain(|_, (_, at)| now.duration_since(*at) < STALE);
                        }
                        st.exits.insert(pid, (code, Instant::now()));
                        self.cond.notify_all();
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    // No children: sleep until one is spawned.
                    let mut st = self.state.lock().unwrap();
                    while st.generation == generation {
                        st = self.cond.wait(st).unwrap();
                    }
                }
            }
        }
    }

    /// Tells the reaper a child now exists. Call right after every spawn.
    pub fn spawned(&self) {
        let mut st = self.state.lock().unwrap();
        st.generation += 1;
        self.cond.notify_all();
    }

    /// Waits up to `limit` for `pid` to exit: its exit code, or `None` if it runs on.
    pub fn wait_timeout(&self, pid: i32, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let mut st = self.state.lock().unwrap();
        loop {
            if let Some((code, _)) = st.exits.remove(&pid) {
                return Some(code);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            st = self.cond.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Blocks until `pid` exits and returns its exit code.
    pub fn wait(&self, pid: i32) -> i32 {
        let mut st = self.state.lock().unwrap();
        loop {
            if let Some((code, _)) = st.exits.remove(&pid) {
                return code;
            }
            st = self.cond.wait(st).unwrap();
        }
    }
}
