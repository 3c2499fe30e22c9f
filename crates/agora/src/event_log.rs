//! `agora events list | replay`: every published event is kept in its
//! service's outbox (type, version, payload, time, published or not); this
//! reads that log and re-delivers a chosen range or type to a chosen
//! consumer, with the original ids, types and payloads. Consumers' inboxes
//! make a replay unable to charge, ship or notify twice.

use agora_platform::amqp::deliver_to;
use agora_platform::bus::EmbeddedBus;
use agora_platform::db::{Conditions, DbError};
use agora_platform::outbox::OutboxRecord;
use agora_platform::Db;
use serde::Serialize;

use crate::dlq::Deployment;

#[derive(clap::Args, Debug, Clone)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: EventsCommand,
    #[command(flatten)]
    pub deployment: Deployment,
    /// Distributed mode: the database of each emitting service to read
    /// (repeat the flag); replays then go through --amqp-url.
    #[arg(long = "database-url", global = true)]
    pub database_urls: Vec<String>,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Range {
    /// Only events of this type (e.g. PaymentRequested).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only events about this order (the CloudEvents subject).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum EventsCommand {
    /// List logged events.
    List(Range),
    /// Deliver logged events again to one consumer.
    Replay {
        /// The consuming service: inventory, order, payment, shipping or notification.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        range: Range,
        #[arg(long)]
        dry_run: bool,
        /// The consumers' replay window in days (their
        /// --inbox-retention-days): an older event is not replayed, since
        /// the record that it was handled may be gone and a replay could
        /// then have a second effect.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(0..=36_500))]
        inbox_retention_days: u64,
    },
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoggedEvent {
    pub source: String,
    pub id: String,
    pub event_type: String,
    pub routing_key: String,
    pub subject: String,
    pub time: String,
    pub published: bool,
    /// The event that caused it (none for the first of a saga).
    pub causation_id: Option<String>,
    #[serde(skip)]
    pub envelope: String,
}

/// The logged events of `db` (service `source`) in `range`, oldest first.
pub async fn select(source: &str, db: &Db, range: &Range) -> Result<Vec<LoggedEvent>, DbError> {
    let filters = Conditions::new().given("subject = $?", range.subject.clone());
    let rows = db
        .query(
            &format!(
                "SELECT id, routing_key, subject, created_at, published_at, envelope FROM outbox{} ORDER BY id",
                filters.clause()
            ),
            &filters.params([]),
        )
        .await?;
    let mut events = Vec::new();
    for r in &rows {
        let envelope = r.text("envelope")?;
        let event = LoggedEvent {
            source: source.to_owned(),
            id: r.text("id")?,
            event_type: agora_platform::dead_letters::event_type_of(&envelope),
            routing_key: r.text("routing_key")?,
            subject: r.text("subject")?,
            time: r.text("created_at")?,
            published: r.opt_text("published_at")?.is_some(),
            causation_id: causation_of(&envelope),
            envelope,
        };
        // RFC 3339 times from one clock compare as instants once parsed.
        let at = parse_time(&event.time);
        let in_range = range
            .event_type
            .as_deref()
            .is_none_or(|t| t == event.event_type)
            && range.since.as_deref().is_none_or(|s| at >= parse_time(s))
            && range.until.as_deref().is_none_or(|u| at < parse_time(u));
        if in_range {
            events.push(event);
        }
    }
    Ok(events)
}

fn causation_of(envelope: &str) -> Option<String> {
    let envelope: serde_json::Value = serde_json::from_str(envelope).ok()?;
    envelope["causationid"].as_str().map(str::to_owned)
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let mut sources: Vec<(String, Db)> = Vec::new();
    if args.database_urls.is_empty() {
        for name in crate::services::names() {
            let path = args.deployment.data_dir.join(format!("{name}.db"));
            anyhow::ensure!(path.exists(), "no {} at {}", name, path.display());
            sources.push((name.to_owned(), Db::open_sqlite(&path, false)?));
        }
    } else {
        for url in &args.database_urls {
            sources.push((
                url.rsplit('/').next().unwrap_or(url).to_owned(),
                Db::connect_postgres(url, 2).await?,
            ));
        }
    }
    let range = match &args.command {
        EventsCommand::List(range) => range,
        EventsCommand::Replay { range, .. } => range,
    };
    for bound in [&range.since, &range.until].into_iter().flatten() {
        anyhow::ensure!(
            parse_time(bound).is_some(),
            "`{bound}` is not an RFC 3339 time"
        );
    }
    let mut events = Vec::new();
    for (source, db) in &sources {
        events.extend(select(source, db, range).await?);
    }
    events.sort_by(|a, b| a.id.cmp(&b.id));
    match &args.command {
        EventsCommand::List(_) => {
            for e in &events {
                println!(
                    "{}  {:<12} {:<18} {:<22} subject={} time={}{}",
                    e.id,
                    e.source,
                    e.event_type,
                    e.routing_key,
                    e.subject,
                    e.time,
                    if e.published {
                        ""
                    } else {
                        " (not yet published)"
                    }
                );
            }
            println!("{} events", events.len());
        }
        EventsCommand::Replay {
            to,
            dry_run,
            inbox_retention_days,
            ..
        } => {
            anyhow::ensure!(
                crate::services::consumer_names().contains(to),
                "`{to}` consumes no events"
            );
            let window = std::time::Duration::from_secs(inbox_retention_days * 24 * 3600);
            let floor = agora_platform::retention::uuid_v7_floor(
                agora_platform::clock::now_millis() - window.as_millis() as i64,
            );
            let before = events.len();
            events.retain(|e| e.id >= floor);
            if events.len() < before {
                println!(
                    "{} events older than the {inbox_retention_days}-day replay window are not replayed",
                    before - events.len()
                );
            }
            if !dry_run {
                replay(&args, to, &events).await?;
            }
            let verb = if *dry_run {
                "would be replayed"
            } else {
                "replayed"
            };
            println!("{} events {verb} to {to}", events.len());
        }
    }
    for (_, db) in &sources {
        db.close().await;
    }
    Ok(())
}

async fn replay(args: &EventsArgs, to: &str, events: &[LoggedEvent]) -> anyhow::Result<()> {
    match args.deployment.amqp() {
        Some(config) => {
            let records: Vec<OutboxRecord> = events
                .iter()
                .map(|e| OutboxRecord {
                    id: e.id.clone(),
                    routing_key: e.routing_key.clone(),
                    envelope: e.envelope.clone(),
                })
                .collect();
            deliver_to(&config, to, &records).await
        }
        None => {
            let bus =
                EmbeddedBus::open(&args.deployment.data_dir.join("bus.db"), Default::default())
                    .await?;
            for e in events {
                bus.deliver(to, &e.id, &e.routing_key, &e.envelope).await?;
            }
            Ok(())
        }
    }
}
