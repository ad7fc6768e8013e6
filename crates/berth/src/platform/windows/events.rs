//! Event delivery: events are numbered and journaled by whoever emits them (an
//! operation, or a thread that saw a process exit), then handed to a channel; one
//! tokio task hands them to the engine's sink in that order. Nothing that emits
//! ever waits for the sink.

use std::sync::{Arc, Mutex, PoisonError};

use berth_types::Event;
use tokio::sync::{mpsc, oneshot};

use crate::types::EventSink;

type Item = (Event, Option<oneshot::Sender<()>>);

/// The sending side, cloned into every container.
#[derive(Clone)]
pub(super) struct Emitter {
    tx: mpsc::UnboundedSender<Item>,
}

impl Emitter {
    /// Queue `event`; the receiver resolves once the sink has had it.
    pub(super) fn send(&self, event: Event) -> oneshot::Receiver<()> {
        let (ack, acked) = oneshot::channel();
        // Only fails once the delivery task is gone with the runtime; then there
        // is nobody to tell.
        let _ = self.tx.send((event, Some(ack)));
        acked
    }
}

/// The delivery task, started on first use from inside the engine's runtime
/// (the Client is built outside one).
pub(super) struct Delivery {
    emitter: Emitter,
    pending: Mutex<Option<(mpsc::UnboundedReceiver<Item>, Arc<dyn EventSink>)>>,
}

impl Delivery {
    pub(super) fn new(sink: Arc<dyn EventSink>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            emitter: Emitter { tx },
            pending: Mutex::new(Some((rx, sink))),
        }
    }

    pub(super) fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// Start the delivery task if it is not running yet. Events queued before
    /// are delivered first.
    pub(super) fn ensure_running(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((mut rx, sink)) = taken {
            runtime.spawn(async move {
                while let Some((event, ack)) = rx.recv().await {
                    sink.event(&event);
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                }
            });
        }
    }
}
