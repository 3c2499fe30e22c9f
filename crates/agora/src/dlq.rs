//! `agora dlq list | show | replay | purge`: the dead-letter queues from the
//! command line, on the embedded bus (`--data-dir`) or on RabbitMQ
//! (`--amqp-url`). Works while Agora runs.

use std::path::PathBuf;
use std::sync::Arc;

use agora_platform::amqp::{AmqpConfig, Broker};
use agora_platform::bus::EmbeddedBus;
use agora_platform::dead_letters::{Action, DeadLetter, Filter};
use agora_platform::transport::Transport;

/// Where the queues and logs are: the embedded data directory, or RabbitMQ.
#[derive(clap::Args, Debug, Clone)]
pub struct Deployment {
    /// The embedded mode's data directory.
    #[arg(
        long,
        env = "AGORA_DATA_DIR",
        default_value = "./agora-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The distributed mode's broker (takes precedence over --data-dir).
    #[arg(long, env = "AMQP_URL", global = true)]
    pub amqp_url: Option<String>,
    #[arg(
        long,
        env = "AGORA_AMQP_PREFIX",
        default_value = "agora.",
        global = true
    )]
    pub amqp_prefix: String,
}

impl Deployment {
    /// The broker settings, in the distributed mode.
    pub fn amqp(&self) -> Option<AmqpConfig> {
        self.amqp_url.as_ref().map(|url| {
            let mut config = AmqpConfig::new(url);
            config.prefix = self.amqp_prefix.clone();
            config
        })
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
    #[command(flatten)]
    pub deployment: Deployment,
    /// Print JSON instead of one line per letter.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Selection {
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub event_type: Option<String>,
    #[arg(long)]
    pub event_id: Option<String>,
    /// Only letters whose error is exactly this.
    #[arg(long)]
    pub error: Option<String>,
    /// Only letters that failed at least this many seconds ago (1 to ten
    /// years; to select every letter, say --all).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=agora_platform::dead_letters::MAX_AGE_SECS))]
    pub older_than_secs: Option<u64>,
}

impl Selection {
    fn filter(&self) -> Filter {
        Filter {
            service: self.service.clone(),
            event_type: self.event_type.clone(),
            event_id: self.event_id.clone(),
            error: self.error.clone(),
            older_than_secs: self.older_than_secs,
        }
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum DlqCommand {
    /// List dead letters.
    List(Selection),
    /// Show one dead letter with its message.
    Show { service: String, event_id: String },
    /// Put dead letters back on their service's queue.
    Replay {
        #[command(flatten)]
        selection: Selection,
        /// Only say what would move.
        #[arg(long)]
        dry_run: bool,
        /// Required when nothing is selected.
        #[arg(long)]
        all: bool,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        selection: Selection,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let transport: Arc<dyn Transport> = match args.deployment.amqp() {
        Some(config) => Broker::new(config),
        None => {
            let path = args.deployment.data_dir.join("bus.db");
            anyhow::ensure!(path.exists(), "no embedded bus at {}", path.display());
            EmbeddedBus::open(&path, Default::default()).await?
        }
    };
    let queues = transport.dead_letters(crate::services::consumer_names());
    let (action, filter, dry_run, all) = match &args.command {
        DlqCommand::List(selection) => (Action::List, selection.filter(), true, true),
        DlqCommand::Show { service, event_id } => {
            let filter = Filter::one(service, event_id);
            let letter = queues
                .act(Action::List, &filter, true)
                .await?
                .into_iter()
                .next();
            let letter =
                letter.ok_or_else(|| anyhow::anyhow!("no dead letter {event_id} for {service}"))?;
            println!("{}", serde_json::to_string_pretty(&letter.redacted())?);
            return Ok(());
        }
        DlqCommand::Replay {
            selection,
            dry_run,
            all,
        } => (Action::Replay, selection.filter(), *dry_run, *all),
        DlqCommand::Purge {
            selection,
            dry_run,
            all,
        } => (Action::Purge, selection.filter(), *dry_run, *all),
    };
    filter.check().map_err(|e| anyhow::anyhow!(e))?;
    let unfiltered = filter.is_empty();
    anyhow::ensure!(!unfiltered || all, "select what to act on (--service, --event-type, --event-id, --older-than-secs) or pass --all");
    let mut letters = queues.act(action, &filter, dry_run).await?;
    for l in &mut letters {
        l.body.clear();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&letters)?);
    } else {
        for l in &letters {
            println!("{}", line(l));
        }
        let verb = match (action, dry_run) {
            (Action::List, _) => "dead letters",
            (Action::Replay, true) => "would be replayed",
            (Action::Replay, false) => "replayed",
            (Action::Purge, true) => "would be purged",
            (Action::Purge, false) => "purged",
        };
        println!("{} {verb}", letters.len());
    }
    Ok(())
}

fn line(l: &DeadLetter) -> String {
    format!(
        "{}  {:<12} {:<18} {:<22} attempts={} failed_at={}  {}",
        l.event_id, l.service, l.event_type, l.routing_key, l.attempts, l.failed_at, l.error
    )
}
