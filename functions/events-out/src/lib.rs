//! events-out: the table's stream, published. Lambda's event source mapping hands this
//! function batches of stream records (`NEW_AND_OLD_IMAGES`, in order per shard); each record
//! becomes zero or more events (`loyalty::store::stream`), which go to the program's bus with
//! `PutEvents`, at most ten entries (and 256 KiB) a request, a few requests in flight.
//!
//! A record is acknowledged only when every one of its events was accepted. The answer names
//! the first record that was not (`ReportBatchItemFailures`): Lambda then retries from that
//! record on, and everything before it is done. So nothing half-published is ever
//! acknowledged, and a retry publishes again what was already accepted after that point —
//! with the same `eventId`s, for consumers to de-duplicate (delivery is at least once). A
//! record that cannot be mapped fails the same way; after the mapping's retries it is
//! parked in the on-failure destination (template: `EventsOutDLQ`, with an alarm).
//!
//! Entries PutEvents refuses one by one (throttling, internal errors) are sent again here a
//! few times first; a request that fails as a whole was already retried by the SDK.
//!
//! The same batch keeps the KPI counters (`loyalty::store::kpi`, README "KPIs") before it is
//! published: the stream is read once for both, and both halves are safe to repeat (counters
//! are bumped once per change, events de-duplicate on their ids), so a record either half
//! could not finish is simply retried whole. A record counted but not published is counted
//! once when it comes again.

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use futures::StreamExt;
use lambda_runtime::Error;
use loyalty::events::{Event, SOURCE};
use loyalty::runtime::{Outcome, Trigger};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// PutEvents takes at most this many entries...
pub const MAX_ENTRIES: usize = 10;
/// ...and this many bytes of them (as AWS counts an entry: `entry_size`).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

pub struct App {
    pub events: aws_sdk_eventbridge::Client,
    /// The program's bus (`LOYALTY_EVENT_BUS`: its name or ARN).
    pub bus: String,
    /// Sends of the entries PutEvents refused one by one, per request (the first included).
    pub tries: u32,
    /// PutEvents requests in flight at once.
    pub concurrency: usize,
    /// Where the KPI counters are kept (`None`: publish only, as some tests do).
    pub kpis: Option<Kpis>,
}

/// The KPI counters' table and the program's calendar (days are program-calendar days).
pub struct Kpis {
    pub store: loyalty::store::Store,
    pub time_zone: chrono_tz::Tz,
    /// `reports.conversionDays` of the rules.
    pub conversion_days: u32,
}

impl App {
    /// Reads the environment only: no network call at init.
    pub async fn from_env() -> Result<App, String> {
        let bus = std::env::var("LOYALTY_EVENT_BUS")
            .ok()
            .filter(|b| !b.is_empty())
            .ok_or("LOYALTY_EVENT_BUS is not set")?;
        let config = loyalty::aws::sdk_config().await;
        let store = loyalty::store::Store::from_env(&config).await?;
        let rules = loyalty::Rules::from_env().map_err(|e| e.to_string())?;
        Ok(App {
            events: aws_sdk_eventbridge::Client::new(&config),
            bus,
            tries: 3,
            concurrency: 4,
            kpis: Some(Kpis {
                store,
                time_zone: rules.time_zone,
                conversion_days: rules.reports.conversion_days,
            }),
        })
    }
}

/// The function's one trigger.
pub async fn handle_trigger(app: &App, trigger: Trigger) -> Result<Outcome, Error> {
    match trigger {
        Trigger::Stream(event) => Ok(Outcome::Stream(handle_stream(app, event).await)),
        // A batch without records reads like an empty SQS batch: nothing to publish.
        Trigger::Sqs(event) if event.records.is_empty() => {
            Ok(Outcome::Stream(DynamoDbEventResponse::default()))
        }
        _ => Err("events-out takes batches of the table's stream only".into()),
    }
}

/// Publishes a batch; answers the first record not acknowledged, if any.
pub async fn handle_stream(app: &App, event: StreamEvent) -> DynamoDbEventResponse {
    let started = Instant::now();
    let records = &event.records;
    // Records are mapped in order up to the first that does not map: everything after it is
    // retried with it, so publishing it now would only publish it twice.
    let mut planned: Vec<(usize, Event)> = Vec::new();
    let mut unmapped = None;
    for (i, record) in records.iter().enumerate() {
        match loyalty::store::stream::events_of(&loyalty::runtime::stream_change(record)) {
            Ok(events) => planned.extend(events.into_iter().map(|e| (i, e))),
            Err(error) => {
                tracing::error!(sequence = record.change.sequence_number.as_deref().unwrap_or_default(), %error, "a stream record does not map to events; reported as failed");
                unmapped = Some(i);
                break;
            }
        }
    }
    let uncounted = match &app.kpis {
        // Boxed: the SDK futures nested here overflow the compiler's layout depth inline.
        Some(k) => Box::pin(count(k, &records[..unmapped.unwrap_or(records.len())])).await,
        None => None,
    };
    let (failed, requests) = publish(app, &planned).await;
    let first = first_unacknowledged(unmapped.into_iter().chain(uncounted).min(), &failed);
    let mut response = DynamoDbEventResponse::default();
    if let Some(i) = first {
        let sequence = records[i].change.sequence_number.clone().unwrap_or_default();
        tracing::warn!(%sequence, retried = records.len() - i, "not every event was accepted; the batch is retried from this record");
        let mut f = DynamoDbBatchItemFailure::default();
        f.item_identifier = Some(sequence);
        response.batch_item_failures.push(f);
    }
    tracing::info!(
        records = records.len(),
        events = planned.len(),
        requests,
        failed_records = failed.len(),
        ms = started.elapsed().as_millis() as u64,
        "stream batch published"
    );
    response
}

/// Adds the records' KPI counters; answers the first record whose counters were not added.
/// A record that does not map to counters stops the count there (as one that does not map
/// to events stops the publishing).
pub async fn count(kpis: &Kpis, records: &[EventRecord]) -> Option<usize> {
    let mut bumps = Vec::new();
    let mut unmapped = None;
    for (i, record) in records.iter().enumerate() {
        match loyalty::store::kpi::bumps_of(
            &loyalty::runtime::stream_change(record),
            kpis.time_zone,
        ) {
            Ok(b) => bumps.extend(b),
            Err(error) => {
                tracing::error!(%error, "a stream record does not map to KPI counters");
                unmapped = Some(i);
                break;
            }
        }
    }
    match kpis.store.add_counts(bumps, chrono::Utc::now(), kpis.conversion_days).await {
        Ok(()) => unmapped,
        Err(error) => {
            // Which bumps were written is not known: all of the batch comes again, and what
            // was written adds nothing then.
            tracing::error!(%error, "KPI counters not added; the batch is retried");
            Some(0)
        }
    }
}

/// The first record to retry from: the first that did not map, or the first with an event
/// that was not accepted, whichever comes first.
pub fn first_unacknowledged(unmapped: Option<usize>, failed: &BTreeSet<usize>) -> Option<usize> {
    failed.iter().next().copied().into_iter().chain(unmapped).min()
}

/// How AWS counts an entry against the request limit: its time (14 bytes), source, detail
/// type and detail.
pub fn entry_size(e: &Event) -> usize {
    14 + SOURCE.len() + e.detail_type.as_str().len() + e.detail.to_string().len()
}

/// Splits entries (by their sizes, in order) into requests of at most `MAX_ENTRIES` entries and
/// `MAX_REQUEST_BYTES` bytes. An entry larger than a request alone gets a request of its own
/// (PutEvents refuses it, and its record fails).
pub fn requests(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_REQUEST_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Publishes the planned events; answers the records with an event not accepted, and the
/// number of PutEvents requests sent.
async fn publish(app: &App, planned: &[(usize, Event)]) -> (BTreeSet<usize>, usize) {
    let sizes: Vec<usize> = planned.iter().map(|(_, e)| entry_size(e)).collect();
    let chunks = requests(&sizes);
    let results: Vec<(Vec<usize>, usize)> = futures::stream::iter(chunks)
        .map(|range| put(app, &planned[range]))
        .buffer_unordered(app.concurrency.max(1))
        .collect()
        .await;
    let mut failed = BTreeSet::new();
    let mut sent = 0;
    for (records, n) in results {
        failed.extend(records);
        sent += n;
    }
    (failed, sent)
}

fn entry(app: &App, e: &Event) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(&app.bus)
        .source(SOURCE)
        .detail_type(e.detail_type.as_str())
        .detail(e.detail.to_string())
        .time(DateTime::from_millis(e.time.timestamp_millis()))
        .build()
}

/// One request's entries, the refused ones sent again: answers the records whose events were
/// still not accepted, and how many requests it took.
async fn put(app: &App, events: &[(usize, Event)]) -> (Vec<usize>, usize) {
    let mut pending: Vec<&(usize, Event)> = events.iter().collect();
    let mut sent = 0;
    for attempt in 0..app.tries.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
        }
        sent += 1;
        let entries: Vec<PutEventsRequestEntry> =
            pending.iter().map(|(_, e)| entry(app, e)).collect();
        match app.events.put_events().set_entries(Some(entries)).send().await {
            Ok(out) => {
                let results = out.entries();
                if results.len() != pending.len() {
                    tracing::error!(
                        sent = pending.len(),
                        answered = results.len(),
                        "PutEvents answered another number of entries; none counts as accepted"
                    );
                    continue;
                }
                let refused: Vec<_> = pending
                    .iter()
                    .zip(results)
                    .filter(|(_, r)| r.error_code().is_some())
                    .map(|(p, r)| (*p, r.error_code().unwrap_or_default().to_string()))
                    .collect();
                if let Some((_, code)) = refused.first() {
                    tracing::warn!(refused = refused.len(), of = pending.len(), code = %code, attempt, "PutEvents refused entries");
                }
                pending = refused.into_iter().map(|(p, _)| p).collect();
                if pending.is_empty() {
                    return (Vec::new(), sent);
                }
            }
            Err(e) => {
                // The SDK already retried what is worth retrying: the records are retried by Lambda.
                let error = aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string();
                tracing::error!(entries = pending.len(), %error, "PutEvents failed");
                break;
            }
        }
    }
    (pending.iter().map(|(i, _)| *i).collect(), sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_hold_ten_entries_and_256_kib_at_most() {
        assert_eq!(requests(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(requests(&[100; 25]), vec![0..10, 10..20, 20..25]);
        let big = MAX_REQUEST_BYTES / 2;
        assert_eq!(requests(&[big, big, 1, 1]), vec![0..2, 2..4]);
        assert_eq!(requests(&[big, big + 1, 10]), vec![0..1, 1..3]);
        assert_eq!(
            requests(&[MAX_REQUEST_BYTES + 1, 5]),
            vec![0..1, 1..2],
            "an entry too big alone goes alone (and fails)"
        );
    }

    #[test]
    fn the_first_record_not_acknowledged_is_the_earliest_failure() {
        let failed = |v: &[usize]| v.iter().copied().collect::<BTreeSet<usize>>();
        assert_eq!(first_unacknowledged(None, &failed(&[])), None);
        assert_eq!(first_unacknowledged(None, &failed(&[7, 3])), Some(3));
        assert_eq!(first_unacknowledged(Some(2), &failed(&[7, 3])), Some(2));
        assert_eq!(first_unacknowledged(Some(9), &failed(&[])), Some(9));
    }

    #[test]
    fn the_sample_stream_batch_is_a_stream_trigger_with_its_events() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/events-out-stream.json")).unwrap();
        let Ok(Trigger::Stream(event)) = loyalty::runtime::classify(sample) else {
            panic!("the sample is not a stream batch")
        };
        let kinds: Vec<String> = event
            .records
            .iter()
            .flat_map(|r| {
                loyalty::store::stream::events_of(&loyalty::runtime::stream_change(r)).unwrap()
            })
            .map(|e| e.detail_type.to_string())
            .collect();
        assert_eq!(kinds, ["PointsPending"], "the sample is a purchase: the member's change and the order are no events, the ledger entry is");
    }
}
