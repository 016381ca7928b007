//! Request/response nodes (`$cbs`, `$management`): the client sends requests on one
//! link and reads replies on another. A reply goes to the link whose target is the
//! request's `reply-to`, or, when the request has none (Python), to this connection's
//! reply link from the same node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp_types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties,
};
use fe2o3_amqp_types::primitives::{SimpleValue, Value};
use tokio::sync::{mpsc, Notify};

use crate::plan::RequestNode;
use crate::server::Connection;

/// How long a request waits for its reply link to be attached.
const REPLY_LINK_WAIT: Duration = Duration::from_secs(10);
/// Requests queued per reply link.
const REPLY_QUEUE: usize = 16;
/// The largest request a node reads (a token is a few hundred bytes).
pub const MAX_REQUEST: u64 = 64 * 1024;

pub type AmqpMessage = Message<Body<Value>>;

struct ReplyLink {
    node: RequestNode,
    target: Option<String>,
    tx: mpsc::Sender<AmqpMessage>,
}

#[derive(Default)]
pub struct Replies {
    links: Mutex<Vec<ReplyLink>>,
    added: Notify,
}

impl Replies {
    fn links(&self) -> std::sync::MutexGuard<'_, Vec<ReplyLink>> {
        // One push or retain at a time: whole after a panic.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, node: RequestNode, target: Option<String>) -> mpsc::Receiver<AmqpMessage> {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let mut links = self.links();
        links.retain(|l| !l.tx.is_closed());
        links.push(ReplyLink { node, target, tx });
        drop(links);
        self.added.notify_waiters();
        rx
    }

    fn find(&self, node: RequestNode, reply_to: Option<&str>) -> Option<mpsc::Sender<AmqpMessage>> {
        let links = self.links();
        let open = links.iter().filter(|l| !l.tx.is_closed());
        match reply_to {
            Some(to) => open
                .filter(|l| l.target.as_deref() == Some(to))
                .map(|l| l.tx.clone())
                .next_back(),
            None => open
                .filter(|l| l.node == node)
                .map(|l| l.tx.clone())
                .next_back(),
        }
    }

    async fn send(&self, node: RequestNode, reply_to: Option<&str>, reply: AmqpMessage) -> bool {
        let deadline = tokio::time::Instant::now() + REPLY_LINK_WAIT;
        loop {
            let added = self.added.notified();
            if let Some(tx) = self.find(node, reply_to) {
                return tx.send(reply).await.is_ok();
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return false;
            }
        }
    }
}

/// A request's application property as a string.
pub fn property<'a>(message: &'a AmqpMessage, name: &str) -> Option<&'a str> {
    match message.application_properties.as_ref()?.0.get(name)? {
        SimpleValue::String(s) => Some(s.as_str()),
        SimpleValue::Symbol(s) => Some(s.as_str()),
        _ => None,
    }
}

/// A reply: the request's message-id as correlation-id (same AMQP type), and
/// `status-code` as an int, which every SDK decodes.
pub fn reply(request: &AmqpMessage, status: i32, description: &str, body: Value) -> AmqpMessage {
    let props = request.properties.as_ref();
    let correlation: Option<MessageId> = props.and_then(|p| p.message_id.clone());
    let mut app = ApplicationProperties::builder()
        .insert("status-code", SimpleValue::Int(status))
        .insert(
            "status-description",
            SimpleValue::String(description.to_string()),
        );
    if status >= 300 {
        let condition = match status {
            401 => crate::server::UNAUTHORIZED,
            404 => crate::server::NOT_FOUND,
            400 => crate::server::ARGUMENT_ERROR,
            _ => crate::server::INTERNAL_ERROR,
        };
        app = app.insert("error-condition", SimpleValue::Symbol(condition.into()));
    }
    Message::builder()
        .properties(Properties {
            correlation_id: correlation,
            to: props.and_then(|p| p.reply_to.clone()),
            ..Default::default()
        })
        .application_properties(app.build())
        .body(Body::Value(AmqpValue(body)))
        .build()
}

/// The request link: read each request, answer it on its reply link.
pub async fn requests(mut link: Receiver, node: RequestNode, shared: Arc<Connection>) {
    loop {
        let delivery = match link.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(peer = %shared.peer, error = %e, "AMQP request link ended");
                break;
            }
        };
        if link.accept(&delivery).await.is_err() {
            break;
        }
        let request = delivery.into_message();
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        let answer = match node {
            RequestNode::Cbs => crate::cbs::put_token(&request, &shared),
            // Partition properties read the log's last batch: a pread, off the runtime.
            RequestNode::Management => {
                tokio::task::block_in_place(|| crate::management::read(&request, &shared))
            }
        };
        if !shared.replies.send(node, reply_to.as_deref(), answer).await {
            tracing::info!(peer = %shared.peer, ?node, "no reply link for a request; dropped its answer");
        }
    }
    let _ = link.close().await;
}

/// The reply link: send what the request links answer.
pub async fn replies(
    mut link: Sender,
    node: RequestNode,
    target: Option<String>,
    shared: Arc<Connection>,
) {
    let mut rx = shared.replies.register(node, target);
    loop {
        tokio::select! {
            reply = rx.recv() => {
                let Some(reply) = reply else { break };
                match link.send_batchable(reply).await {
                    Ok(_settlement) => {}
                    Err(e) => {
                        tracing::debug!(peer = %shared.peer, error = %e, "AMQP reply link ended");
                        break;
                    }
                }
            }
            _ = link.on_detach() => break,
        }
    }
    let _ = link.close().await;
}
