//! Forwarding events to containerd (when containerd started the shim): best
//! effort, in order, reconnecting; a missing listener never stops the shim.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use berth_types::{Event, EventKind, INIT_PROCESS_ID};
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_sync::EventsClient;
use containerd_shim_protos::topics;

/// How often one event is retried before it is dropped (containerd gone for good).
const ATTEMPTS: u32 = 20;

/// Sends journaled events to containerd's event service.
pub struct Forwarder {
    tx: mpsc::Sender<Event>,
    /// Disconnected once the publisher thread has sent (or dropped) every event.
    drained: mpsc::Receiver<()>,
}

impl Forwarder {
    /// Starts forwarding to the ttrpc address containerd passed (`TTRPC_ADDRESS`).
    pub fn start(address: String, namespace: String, bundle: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel::<Event>();
        let (drained_tx, drained) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("publisher".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let _drained = drained_tx;
                let addr = if address.starts_with("unix://") {
                    address.clone()
                } else {
                    format!("unix://{address}")
                };
                for event in rx {
                    let Some(req) = request(&event, &namespace, &bundle) else {
                        continue;
                    };
                    // A connection per event: events are few, and a connection kept
                    // across a containerd restart would be a dead one.
                    for attempt in 0..ATTEMPTS {
                        let sent = ttrpc::Client::connect(&addr)
                            .ok()
                            .map(EventsClient::new)
                            .is_some_and(|c| {
                                c.forward(ttrpc::context::with_timeout(5_000_000_000), &req)
                                    .is_ok()
                            });
                        if sent {
                            break;
                        }
                        if attempt + 1 == ATTEMPTS {
                            tracing::warn!(topic = %req.envelope.topic, "containerd unreachable; event dropped");
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(
                            100 * u64::from(attempt + 1).min(10),
                        ));
                    }
                }
            })
            .expect("spawn publisher thread");
        Self { tx, drained }
    }

    pub fn send(&self, event: &Event) {
        let _ = self.tx.send(event.clone());
    }

    /// Takes no more events and waits, at most `limit`, for the queued ones to
    /// reach containerd: an exit that happened while containerd restarted may still
    /// be in its retries when the delete behind it is queued and the shim is told to
    /// shut down (the Go shims wait 5 s for their publisher likewise).
    pub fn close(self, limit: Duration) {
        let Self { tx, drained } = self;
        drop(tx);
        if drained.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            tracing::warn!("containerd unreachable; queued events dropped at shutdown");
        }
    }
}

fn timestamp(e: &Event) -> MessageField<Timestamp> {
    crate::service::timestamp(e.time)
}

fn any(msg: &impl Message, name: &str) -> Option<Any> {
    let mut a = Any::new();
    a.type_url = format!("containerd.events.{name}");
    a.value = msg.write_to_bytes().ok()?;
    Some(a)
}

/// The containerd event for a journal entry, with its topic.
fn request(e: &Event, namespace: &str, bundle: &std::path::Path) -> Option<ForwardRequest> {
    let cid = e.id.to_string();
    let pid = e.pid.unwrap_or(0);
    let exec_id = e
        .process_id
        .as_ref()
        .filter(|p| p.as_str() != INIT_PROCESS_ID)
        .map(|p| p.to_string());
    let (topic, payload) = match e.kind {
        EventKind::Create => {
            let mut m = ev::TaskCreate::new();
            m.container_id = cid;
            m.bundle = bundle.to_string_lossy().into_owned();
            m.pid = pid;
            (topics::TASK_CREATE_EVENT_TOPIC, any(&m, "TaskCreate")?)
        }
        EventKind::Start => {
            let mut m = ev::TaskStart::new();
            m.container_id = cid;
            m.pid = pid;
            (topics::TASK_START_EVENT_TOPIC, any(&m, "TaskStart")?)
        }
        EventKind::ExecAdded => {
            let mut m = ev::TaskExecAdded::new();
            m.container_id = cid;
            m.exec_id = exec_id.unwrap_or_default();
            (
                topics::TASK_EXEC_ADDED_EVENT_TOPIC,
                any(&m, "TaskExecAdded")?,
            )
        }
        EventKind::ExecStarted => {
            let mut m = ev::TaskExecStarted::new();
            m.container_id = cid;
            m.exec_id = exec_id.unwrap_or_default();
            m.pid = pid;
            (
                topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                any(&m, "TaskExecStarted")?,
            )
        }
        EventKind::Exit => {
            let mut m = ev::TaskExit::new();
            m.id = exec_id.unwrap_or_else(|| cid.clone());
            m.container_id = cid;
            m.pid = pid;
            m.exit_status = e.exit_code.unwrap_or(berth_types::UNKNOWN_EXIT_CODE) as u32;
            m.exited_at = timestamp(e);
            (topics::TASK_EXIT_EVENT_TOPIC, any(&m, "TaskExit")?)
        }
        EventKind::Delete => {
            let mut m = ev::TaskDelete::new();
            m.id = cid.clone();
            m.container_id = cid;
            m.pid = pid;
            m.exit_status = e.exit_code.unwrap_or(berth_types::UNKNOWN_EXIT_CODE) as u32;
            m.exited_at = timestamp(e);
            (topics::TASK_DELETE_EVENT_TOPIC, any(&m, "TaskDelete")?)
        }
        EventKind::Oom => {
            let mut m = ev::TaskOOM::new();
            m.container_id = cid;
            (topics::TASK_OOM_EVENT_TOPIC, any(&m, "TaskOOM")?)
        }
        EventKind::Paused => {
            let mut m = ev::TaskPaused::new();
            m.container_id = cid;
            (topics::TASK_PAUSED_EVENT_TOPIC, any(&m, "TaskPaused")?)
        }
        EventKind::Resumed => {
            let mut m = ev::TaskResumed::new();
            m.container_id = cid;
            (topics::TASK_RESUMED_EVENT_TOPIC, any(&m, "TaskResumed")?)
        }
        EventKind::Checkpointed => {
            let mut m = ev::TaskCheckpointed::new();
            m.container_id = cid;
            (
                topics::TASK_CHECKPOINTED_EVENT_TOPIC,
                any(&m, "TaskCheckpointed")?,
            )
        }
        EventKind::Restore => return None,
    };
    let mut env = Envelope::new();
    env.timestamp = timestamp(e);
    env.namespace = namespace.to_owned();
    env.topic = topic.to_owned();
    env.event = MessageField::some(payload);
    let mut req = ForwardRequest::new();
    req.envelope = MessageField::some(env);
    Some(req)
}
