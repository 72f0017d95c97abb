//! `wardgate passwd`: password hashes for the UsernamePassword method (SPEC.md §7.5), in the
//! `passwords.toml` format of the AIO sample (`$pbkdf2-sha512$i=…,l=64$<salt>$<hash>` with
//! `[user.attributes]`). Prints the entry, or adds it to a file; optionally prints the Secret
//! that holds the file.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use wardgate_security::authn::password::{
    DEFAULT_ITERATIONS, PasswordFile, PasswordHash, entry_text, has_entry, secret_yaml,
    upsert_entry,
};

/// Arguments of `wardgate passwd`.
#[derive(Debug, clap::Args)]
pub(crate) struct PasswdArgs {
    /// The username (the CONNECT username the client sends).
    username: String,
    /// Add or replace the user in this passwords.toml (created if missing; comments are not
    /// kept). Without it, the entry is printed.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// An authorization attribute of the user; may repeat (`--attr floor=1 --attr site=a`).
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    attrs: Vec<(String, String)>,
    /// Read the password from the first line of standard input (the default when standard
    /// input is not a terminal); otherwise it is asked for twice, without echo.
    #[arg(long)]
    password_stdin: bool,
    /// PBKDF2-HMAC-SHA512 iterations.
    #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
    iterations: u32,
    /// Also print a Secret of this name holding the file under `passwords.toml` (for
    /// `usernamePasswordSettings.secretRef`); needs --file.
    #[arg(long, value_name = "NAME", requires = "file")]
    secret: Option<String>,
}

/// Parses `KEY=VALUE`.
pub(crate) fn parse_attr(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("\"{s}\" is not KEY=VALUE")),
    }
}

pub(crate) fn run(args: PasswdArgs) -> ExitCode {
    match passwd(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wardgate passwd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn passwd(args: PasswdArgs) -> anyhow::Result<()> {
    if args.username.is_empty() || args.username.contains(['\n', '\r']) {
        bail!("the username must be one non-empty line");
    }
    let password = read_password(args.password_stdin)?;
    let attributes: BTreeMap<String, String> = args.attrs.into_iter().collect();
    let hash = PasswordHash::create(password.as_bytes(), args.iterations)?;
    let Some(file) = args.file else {
        print!("{}", entry_text(&args.username, &hash, &attributes));
        return Ok(());
    };
    let old = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let existed = has_entry(&old, &args.username);
    let new = upsert_entry(&old, &args.username, &hash, &attributes)
        .with_context(|| format!("{}", file.display()))?;
    write_private(&file, &new)?;
    eprintln!(
        "{} user \"{}\" in {}",
        if existed { "replaced" } else { "added" },
        args.username,
        file.display()
    );
    if let Err(e) = PasswordFile::parse(new.as_bytes()) {
        eprintln!(
            "note: {}: {e}; the UsernamePassword method reads only `password` and `attributes` \
             (the example custom authentication server also reads `expiry_seconds` and \
             `deny_reason`)",
            file.display()
        );
    }
    if let Some(name) = args.secret {
        print!("{}", secret_yaml(&name, &new)?);
    }
    Ok(())
}

/// Writes through a temporary file in the same folder (mode 0600), then renames.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("passwords")
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        if pw.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(pw);
    }
    let first = prompt("Password: ")?;
    if first.is_empty() {
        bail!("the password is empty");
    }
    let second = prompt("Reenter password: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// Asks on the terminal with echo off (`stty -echo`), restoring it afterwards.
fn prompt(text: &str) -> anyhow::Result<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    eprint!("{text}");
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_parse() {
        assert_eq!(parse_attr("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_attr("a="), Ok(("a".into(), String::new())));
        assert!(parse_attr("=b").is_err());
        assert!(parse_attr("ab").is_err());
    }
}
