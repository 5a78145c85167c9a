//! Ballots from HTTP handlers into the processor's channel, grouped: every
//! request waiting at a moment shares one batch, so one store transaction
//! (one fsync) answers many requests. That is how durable intake keeps up
//! with tens of thousands of requests a second.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::metrics::HTTP_KEYS_IN_FLIGHT;
use crate::bus::{BallotSink, Inbound};
use crate::process::ack::{Ack, Decision};

/// Most ballots forwarded as one batch.
const MAX_GROUP: usize = 8192;
/// Ballots waiting for the forwarder; handlers wait (asynchronously) beyond.
const QUEUE: usize = 65_536;

enum Msg {
    Ballot(Inbound),
    Stop,
}

/// The handlers' side: cheap to clone.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Msg>,
    /// Ballot ids of Idempotency-Key requests waiting for their answer.
    in_flight: Arc<Mutex<HashSet<String>>>,
}

/// A ballot id held by a request until its answer is sent (or the request
/// is dropped): a concurrent retry with the same Idempotency-Key is refused
/// meanwhile instead of racing the first.
pub struct InFlight {
    ids: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.remove(&self.id);
        metrics::gauge!(HTTP_KEYS_IN_FLIGHT).set(ids.len() as f64);
    }
}

/// Closes the intake (the processor can then drain and stop).
pub struct IntakeStop {
    tx: mpsc::Sender<Msg>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the ballot intake is closed")]
    Closed,
    #[error("the ballot was not durably recorded (the store failed); retry with the same Idempotency-Key")]
    NotRecorded,
}

impl Intake {
    /// Starts the forwarder thread in front of the processor's channel.
    pub fn start(sink: Box<dyn BallotSink>) -> (Intake, IntakeStop) {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        std::thread::Builder::new()
            .name("http-intake".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut group = Vec::new();
                    let mut stop = false;
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Ballot(b) => group.push(b),
                            Msg::Stop => stop = true,
                        }
                        if group.len() < MAX_GROUP && !stop {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !group.is_empty() {
                        match sink.send(group) {
                            Ok(true) => {}
                            Ok(false) => break,
                            // Each waiter of the group has been dropped, so
                            // it hears "not recorded"; later ballots may fare
                            // better.
                            Err(e) => tracing::warn!(error = %e, "forwarding ballots"),
                        }
                    }
                    if stop {
                        break;
                    }
                }
                // Dropping the sink here lets the processor's channel close.
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the intake thread"));
        let intake = Intake {
            tx: tx.clone(),
            in_flight: Arc::default(),
        };
        (intake, IntakeStop { tx })
    }

    /// Holds `ballot_id` for one request; `None` while another holds it.
    pub fn hold(&self, ballot_id: &str) -> Option<InFlight> {
        let mut ids = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let held = ids.insert(ballot_id.to_string()).then(|| InFlight {
            ids: self.in_flight.clone(),
            id: ballot_id.to_string(),
        });
        metrics::gauge!(HTTP_KEYS_IN_FLIGHT).set(ids.len() as f64);
        held
    }

    /// Sends one ballot and waits until it is committed (or refused).
    pub async fn submit(&self, ballot: Inbound) -> Result<Decision, IntakeError> {
        let (ack, answer) = oneshot::channel();
        self.tx
            .send(Msg::Ballot(ballot.with_ack(Ack(ack))))
            .await
            .map_err(|_| IntakeError::Closed)?;
        answer.await.map_err(|_| IntakeError::NotRecorded)
    }
}

impl IntakeStop {
    /// From a plain thread (not an async task).
    pub fn stop(self) {
        let _ = self.tx.blocking_send(Msg::Stop);
    }
}
