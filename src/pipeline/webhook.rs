//! `--alert-webhook URL`: each recorded alert change POSTed as JSON to a URL,
//! for people who route alerts elsewhere (a chat relay, an incident tool).
//! A thread of its own does the sending, so a slow or dead receiver never
//! holds up the alerts stage: each change is tried up to [`ATTEMPTS`] times,
//! each try bounded by [`TIMEOUT`], with a growing pause between tries; only
//! what can clear is tried again (no answer, a 5xx, a 429), and a change
//! that still fails is logged and counted, not kept.

use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::alerts::stage::{AlertChange, AlertSink};
use crate::metric_names::ALERT_WEBHOOK;

pub const ATTEMPTS: u32 = 4;
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Changes waiting to be sent; past this a change is dropped (and counted).
const QUEUE: usize = 10_000;

/// A webhook URL, checked once at the edge: plain HTTP (this build has no
/// TLS client: point it at a relay on the same network for HTTPS).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookUrl(hyper::Uri);

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<WebhookUrl, String> {
        let uri: hyper::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") if uri.host().is_some() => Ok(WebhookUrl(uri)),
            Some("https") => Err(format!(
                "{s:?}: only http:// webhooks are supported (no TLS client in this build); \
                 use a relay that forwards to HTTPS"
            )),
            _ => Err(format!("{s:?} is not an http:// URL with a host")),
        }
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub struct Webhook {
    tx: Sender<Bytes>,
    /// The next change number to send (earlier ones were before this run,
    /// or are sent already).
    next: i64,
}

impl Webhook {
    /// Starts the sending thread; changes numbered `from` on will be sent.
    pub fn start(url: WebhookUrl, from: i64) -> std::io::Result<Webhook> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        std::thread::Builder::new()
            .name("alert-webhook".into())
            .spawn(move || send_all(url, rx))?;
        Ok(Webhook { tx, next: from })
    }
}

impl AlertSink for Webhook {
    fn publish(
        &mut self,
        election_id: &str,
        changes: &[(i64, &AlertChange)],
    ) -> anyhow::Result<()> {
        let from = self.next;
        for (no, c) in changes.iter().filter(|(no, _)| *no >= from) {
            let mut body = serde_json::to_value(c)?;
            if let Some(obj) = body.as_object_mut() {
                obj.insert("election_id".into(), election_id.into());
                obj.insert("event_no".into(), (*no).into());
            }
            let bytes = Bytes::from(serde_json::to_vec(&body)?);
            if self.tx.try_send(bytes).is_err() {
                metrics::counter!(ALERT_WEBHOOK, "outcome" => "dropped").increment(1);
                tracing::warn!(event_no = no, "alert webhook: queue full, change not sent");
            }
            self.next = no + 1;
        }
        Ok(())
    }
}

fn send_all(url: WebhookUrl, rx: Receiver<Bytes>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "alert webhook: no runtime, nothing will be sent");
            return;
        }
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    while let Ok(body) = rx.recv() {
        let outcome = rt.block_on(send_one(&client, &url.0, body));
        metrics::counter!(ALERT_WEBHOOK, "outcome" => outcome).increment(1);
    }
}

/// One change, tried until it is delivered, refused for good, or out of tries.
async fn send_one(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    uri: &hyper::Uri,
    body: Bytes,
) -> &'static str {
    let mut pause = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let req = hyper::Request::post(uri.clone())
            .header("content-type", "application/json")
            .header("user-agent", "votestream-alerts")
            .body(Full::new(body.clone()));
        let Ok(req) = req else { return "failed" };
        let answer = tokio::time::timeout(TIMEOUT, async {
            let resp = client.request(req).await?;
            let status = resp.status();
            // Read the answer through, so the connection can be reused.
            let _ = resp.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        })
        .await;
        let retry = match answer {
            Ok(Ok(s)) if s.is_success() => return "delivered",
            Ok(Ok(s)) if s.is_server_error() || s.as_u16() == 429 => format!("answered {s}"),
            Ok(Ok(s)) => {
                tracing::warn!(status = %s, %uri, "alert webhook refused a change; not retried");
                return "refused";
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
        };
        tracing::warn!(attempt, %uri, reason = retry, "alert webhook: not delivered");
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    "failed"
}
