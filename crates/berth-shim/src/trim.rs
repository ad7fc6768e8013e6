//! Keeps a waiting shim small. Once init runs, the shim mostly waits; the code that
//! set the container up, and whatever code a later request runs, need not stay
//! mapped. A thread lets go of the clean read-only file pages (see
//! [`sys::trim_file_pages`]) 300 ms after init starts, and again whenever the shim
//! has been busy (its page-fault count moved) and then quiet for 300 ms. It looks
//! once a second: one `getrusage` call.

use std::sync::Once;
use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};

use crate::sys;

/// How long the shim must be quiet before its pages go.
const QUIET: Duration = Duration::from_millis(300);
/// How often the thread looks for activity.
const TICK: Duration = Duration::from_secs(1);

/// Starts the trimming thread (once per shim).
pub fn start() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("trim".into())
            .stack_size(64 * 1024)
            .spawn(run);
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "start trim thread");
        }
    });
}

/// Page faults of the whole shim so far (minor and major).
fn faults() -> i64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u.minor_page_faults() + u.major_page_faults())
}

/// Whether the shim took no page fault for `d`.
fn quiet_for(d: Duration) -> bool {
    let before = faults();
    std::thread::sleep(d);
    faults() == before
}

fn run() {
    std::thread::sleep(QUIET);
    loop {
        sys::trim_file_pages();
        // This thread's own code faults back in on its first round: count from
        // after it, or every trim would look like activity.
        quiet_for(Duration::from_millis(1));
        while quiet_for(TICK) {}
        // Busy: wait for a quiet spell before trimming again.
        while !quiet_for(QUIET) {}
    }
}
