//! `wardgate create secret tls` and `wardgate create configmap`: the YAML kubectl would write,
//! printed, or saved into a folder that `--config` can read.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

/// What to create.
#[derive(Debug, Subcommand)]
pub(crate) enum CreateCommand {
    /// A Secret.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// A ConfigMap from files (`--from-file=[KEY=]FILE`, repeatable; a folder adds each file).
    Configmap {
        /// The ConfigMap's name.
        name: String,
        /// `[KEY=]FILE` or a folder; may repeat.
        #[arg(long = "from-file", value_name = "[KEY=]FILE", required = true)]
        from_file: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
}

/// Kinds of Secret.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// A `kubernetes.io/tls` Secret from a certificate chain and its key.
    Tls {
        /// The Secret's name.
        name: String,
        /// PEM certificate chain, leaf first.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// PEM private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        out: Output,
    },
}

/// Where the YAML goes.
#[derive(Debug, clap::Args)]
pub(crate) struct Output {
    /// Namespace to put in the metadata.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Write `<kind>-<name>.yaml` into this folder instead of printing it.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(crate) fn run(cmd: CreateCommand) -> anyhow::Result<()> {
    let (kind, name, yaml, out) = match cmd {
        CreateCommand::Secret(SecretCommand::Tls {
            name,
            cert,
            key,
            out,
        }) => {
            let yaml = wardgate_config::create::secret_tls_from_files(
                &name,
                out.namespace.as_deref(),
                &cert,
                &key,
            )?;
            ("secret", name, yaml, out)
        }
        CreateCommand::Configmap {
            name,
            from_file,
            out,
        } => {
            let yaml = wardgate_config::create::config_map_from_files(
                &name,
                out.namespace.as_deref(),
                &from_file,
            )?;
            ("configmap", name, yaml, out)
        }
    };
    match out.dir {
        None => print!("{yaml}"),
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let file = format!("{kind}-{name}.yaml");
            let path = dir.join(&file);
            // Written aside and renamed: a broker polling the folder (a replaced Secret is
            // picked up within a second) never reads half a file. Hidden files are not read.
            let aside = dir.join(format!(".{file}.tmp"));
            std::fs::write(&aside, yaml)
                .and_then(|()| std::fs::rename(&aside, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
