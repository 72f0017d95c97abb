//! Real processes for end-to-end tests: a broker under a kill-on-drop guard, free ports, commands
//! run under hard timeouts, and where the real MQTT clients (mosquitto, Paho, MQTT.js) are.
//!
//! Everything here is bounded in time and talks to 127.0.0.1 only. A tool that is missing is an
//! error that says to run `scripts/test` (which installs it), never a silent skip.
//!
//! The broker is Wardgate by default. `WARDGATE_TEST_BROKER=mosquitto` starts Mosquitto with the
//! same ports instead, so the journeys can be checked against a reference broker.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::resources;

/// Environment variable that picks the broker under test: `wardgate` (default) or `mosquitto`.
pub const BROKER_ENV: &str = "WARDGATE_TEST_BROKER";
/// Environment variable naming the Python interpreter of the venv that holds `paho-mqtt`.
pub const PYTHON_ENV: &str = "WARDGATE_PYTHON";
/// Environment variable naming the `node_modules` folder that holds the npm `mqtt` package.
pub const NODE_MODULES_ENV: &str = "WARDGATE_NODE_MODULES";

/// Environment variable naming the folder where every process the tests start leaves a copy of
/// its output (default `<repo>/target/test-logs`); `scripts/test` greps it for secrets.
pub const LOG_DIR_ENV: &str = "WARDGATE_TEST_LOG_DIR";

/// How long a broker may take from spawn to accepting TCP on every port.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the broker's log a dropped guard prints (the tail, for failing tests).
const LOG_TAIL_LINES: usize = 80;
/// Ports are picked below Linux's ephemeral range (32768–60999), so that a client's outgoing
/// connection can never take a port chosen for a broker that has not bound it yet.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// What went wrong while running a process for a test.
#[derive(Debug)]
pub enum Error {
    /// A client or broker the tests need is not installed where it is looked for.
    Missing {
        /// The tool, as a user would name it.
        tool: String,
        /// Where it was looked for.
        looked: String,
    },
    /// An I/O operation on a process or the file system failed.
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A process did not finish, or a line did not appear, within its time limit.
    Timeout {
        /// What was waited for.
        what: String,
        /// The time limit.
        after: Duration,
        /// What the process had printed by then.
        output: String,
    },
    /// A process ended before printing the line that was awaited.
    Ended {
        /// What was waited for.
        what: String,
        /// Everything the process printed, and how it ended.
        output: String,
    },
    /// The broker exited or never accepted connections.
    Broker {
        /// What happened.
        what: String,
        /// The tail of the broker's log.
        log: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing { tool, looked } => write!(
                f,
                "{tool} is not installed (looked for {looked}); run scripts/test, which installs \
                 every tool the tests need"
            ),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Timeout {
                what,
                after,
                output,
            } => {
                write!(
                    f,
                    "timed out after {after:?} waiting for {what}; output so far:\n{output}"
                )
            }
            Error::Ended { what, output } => {
                write!(f, "the process ended before {what}:\n{output}")
            }
            Error::Broker { what, log } => write!(f, "{what}; broker log tail:\n{log}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

// ---------------------------------------------------------------------------------------------
// Ports

/// Ports handed out by this process, so that tests running on parallel threads never share one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port that is free on every interface now and was not handed out before by this process.
///
/// The port is free only until someone binds it; pass it to the broker promptly.
pub fn free_port() -> Result<u16, Error> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed = handed.get_or_insert_with(HashSet::new);
    let random = RandomState::new();
    let span = u64::from(PORT_RANGE.end - PORT_RANGE.start);
    for attempt in 0u64..1_000 {
        let offset = u16::try_from(random.hash_one(attempt) % span).unwrap_or(0);
        let port = PORT_RANGE.start + offset;
        // Binding the wildcard address also fails when the port is taken on loopback only.
        if !handed.contains(&port) && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            handed.insert(port);
            return Ok(port);
        }
    }
    Err(Error::Io {
        what: format!("finding a free port in {PORT_RANGE:?}"),
        source: io::Error::new(io::ErrorKind::AddrInUse, "no free port after 1000 tries"),
    })
}

/// Waits until `127.0.0.1:port` accepts a TCP connection, for at most `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("{addr} to accept connections"),
                after: timeout,
                output: String::new(),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// What a finished (or killed) process printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything printed on standard output.
    pub stdout: String,
    /// Everything printed on standard error.
    pub stderr: String,
}

impl Output {
    /// Standard output, one entry per line.
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.stdout.lines()
    }

    /// Whether the process exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The output itself if the process exited with status 0, otherwise an error showing it all.
    pub fn ok(self) -> Result<Output, OutputError> {
        if self.success() {
            Ok(self)
        } else {
            Err(OutputError(self))
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "{}", self.status)?;
        writeln!(f, "--- stdout\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr\n{}", self.stderr.trim_end())
    }
}

/// A process that exited with a non-zero status; shows its command line and output.
#[derive(Debug)]
pub struct OutputError(pub Output);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command failed:\n{}", self.0)
    }
}

impl std::error::Error for OutputError {}

/// Runs `cmd` to completion with no standard input, killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, Error> {
    Running::spawn(cmd)?.wait(timeout)
}

/// A child process whose standard output is read line by line as it arrives.
///
/// Dropping it kills the process, so a failing test never leaves one behind.
pub struct Running {
    command: String,
    child: Child,
    stdout: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("command", &self.command)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Starts `cmd` with no standard input and both outputs captured.
    /// A broker's outputs (`wardgate serve`, directly or through `sh -c`) are also copied to a
    /// file in [`log_dir`].
    pub fn spawn(cmd: &mut Command) -> Result<Running, Error> {
        let command = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error(format!("starting `{command}`")))?;
        let log = is_broker(cmd)
            .then(|| log_copy(&command, child.id()))
            .flatten();
        let (tx, stdout) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            read_lines(out, tx, log.clone());
        }
        let stderr = child.stderr.take().map(|mut err| {
            thread::spawn(move || {
                let mut text = Vec::new();
                let mut chunk = [0u8; 8192];
                // A read error ends the capture; what was read so far is kept.
                while let Ok(n @ 1..) = err.read(&mut chunk) {
                    text.extend_from_slice(&chunk[..n]);
                    if let Some(log) = &log {
                        log.write(&chunk[..n]);
                    }
                }
                String::from_utf8_lossy(&text).into_owned()
            })
        });
        Ok(Running {
            command,
            child,
            stdout,
            seen: Vec::new(),
            stderr,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines of standard output received so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Waits for a line of standard output that satisfies `pred`, for at most `timeout`, and
    /// returns it. Lines before it are kept in [`Running::seen`] and in the final output.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        what: format!("{what} from `{}`", self.command),
                        after: timeout,
                        output: self.seen.join("\n"),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let output = self.kill();
                    return Err(Error::Ended {
                        what: format!("{what} from `{}`", self.command),
                        output: output.to_string(),
                    });
                }
            }
        }
    }

    /// Waits for the process to exit, for at most `timeout`; on timeout it is killed and the
    /// error carries what it printed.
    pub fn wait(mut self, timeout: Duration) -> Result<Output, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(self.collect(status)),
                Ok(None) if Instant::now() >= deadline => {
                    let command = self.command.clone();
                    let output = self.kill();
                    return Err(Error::Timeout {
                        what: format!("`{command}` to exit"),
                        after: timeout,
                        output: output.to_string(),
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(source) => {
                    return Err(Error::Io {
                        what: format!("waiting for `{}`", self.command),
                        source,
                    });
                }
            }
        }
    }

    /// Kills the process with SIGKILL (an abrupt network close, as a crash or power loss) and
    /// returns what it printed.
    pub fn kill(&mut self) -> Output {
        // Failing to kill means it has already exited; wait() below reaps it either way.
        let _ = self.child.kill();
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(_) => exit_status_unknown(),
        };
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Output {
        // The pipes close when the process exits; bound the wait in case a grandchild holds them.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        let stderr = match self.stderr.take() {
            Some(handle) if wait_finished(&handle, deadline) => handle.join().unwrap_or_default(),
            _ => String::new(),
        };
        let mut stdout = self.seen.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        Output {
            command: self.command.clone(),
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(out: ChildStdout, tx: mpsc::Sender<String>, log: Option<LogCopy>) {
    // Detached: it ends when the process closes its output. The log copy goes on after the
    // receiver is dropped, so that it has everything the process printed.
    thread::spawn(move || {
        let mut forwarding = true;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(log) = &log {
                log.write(format!("{line}\n").as_bytes());
            }
            if forwarding && tx.send(line).is_err() {
                forwarding = false;
                if log.is_none() {
                    break;
                }
            }
        }
    });
}

/// Whether `cmd` runs `wardgate serve` (or `mosquitto`, the differential broker).
fn is_broker(cmd: &Command) -> bool {
    let program = Path::new(cmd.get_program());
    program.file_name().is_some_and(|n| n == "mosquitto")
        || cmd.get_args().any(|a| {
            let a = a.to_string_lossy();
            a == "serve" || a.contains("\" serve ") || a.contains(" serve --")
        })
}

/// The folder that collects a copy of every test broker's output: `$WARDGATE_TEST_LOG_DIR`,
/// else `<repo>/target/test-logs`.
pub fn log_dir() -> PathBuf {
    std::env::var_os(LOG_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-logs"))
}

/// A file in [`log_dir`] that both output readers of one process append to.
#[derive(Clone)]
struct LogCopy(std::sync::Arc<Mutex<File>>);

impl LogCopy {
    fn write(&self, bytes: &[u8]) {
        use std::io::Write as _;
        // A log copy that cannot be written is lost; the test itself goes on.
        let _ = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(bytes);
    }
}

/// Opens `<log_dir>/<program>-<pid>.log` (appending: pids are reused) with the command line
/// first. `None` when the folder cannot be written.
fn log_copy(command: &str, pid: u32) -> Option<LogCopy> {
    let dir = log_dir();
    fs::create_dir_all(&dir).ok()?;
    let program = command.split_whitespace().next().unwrap_or("process");
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| "process".into(), |n| n.to_string_lossy().into_owned());
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}-{pid}.log")))
        .ok()?;
    let log = LogCopy(std::sync::Arc::new(Mutex::new(file)));
    log.write(format!("$ {command}\n").as_bytes());
    Some(log)
}

fn wait_finished<T>(handle: &JoinHandle<T>, deadline: Instant) -> bool {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

fn exit_status_unknown() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(-1)
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '\'', '"', '$', '#']) {
            text.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        } else {
            text.push(' ');
            text.push_str(&arg);
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Tools

/// The repository root (where `scripts/test` lives).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `tests/clients/`: the Paho and MQTT.js journey scripts.
pub fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

/// The Python of the venv with `paho-mqtt`: `$WARDGATE_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python() -> Result<PathBuf, Error> {
    let path = std::env::var_os(PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let paho = path
        .parent()
        .and_then(Path::parent)
        .map(|venv| venv.join("lib"));
    let has_paho = paho.is_some_and(|lib| contains_dir(&lib, "site-packages/paho/mqtt"));
    if path.is_file() && has_paho {
        Ok(path)
    } else {
        Err(Error::Missing {
            tool: "Python paho-mqtt".into(),
            looked: format!(
                "{} with paho/mqtt in its venv (${PYTHON_ENV})",
                path.display()
            ),
        })
    }
}

/// The `node_modules` folder holding `mqtt`: `$WARDGATE_NODE_MODULES`, else
/// `<repo>/tests/clients/node_modules`.
pub fn node_modules() -> Result<PathBuf, Error> {
    let path = std::env::var_os(NODE_MODULES_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| clients_dir().join("node_modules"));
    if path.join("mqtt/package.json").is_file() {
        Ok(path)
    } else {
        Err(Error::Missing {
            tool: "npm package mqtt".into(),
            looked: format!("{}/mqtt (${NODE_MODULES_ENV})", path.display()),
        })
    }
}

/// A `node` command that resolves `require('mqtt')` from [`node_modules`].
pub fn node_command() -> Result<Command, Error> {
    let node = find_program("node", &[])?;
    let mut cmd = Command::new(node);
    cmd.env("NODE_PATH", node_modules()?);
    Ok(cmd)
}

/// A `python` command (the venv's) running a script from [`clients_dir`].
pub fn python_command() -> Result<Command, Error> {
    let mut cmd = Command::new(python()?);
    cmd.env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Ok(cmd)
}

/// `mosquitto_pub`, from Debian's `mosquitto-clients`.
pub fn mosquitto_pub() -> Result<PathBuf, Error> {
    find_program("mosquitto_pub", &["/usr/bin"])
}

/// `mosquitto_sub`, from Debian's `mosquitto-clients`.
pub fn mosquitto_sub() -> Result<PathBuf, Error> {
    find_program("mosquitto_sub", &["/usr/bin"])
}

/// The `mosquitto` broker, from Debian's `mosquitto` (in `/usr/sbin`, often not on `PATH`).
pub fn mosquitto() -> Result<PathBuf, Error> {
    find_program("mosquitto", &["/usr/sbin", "/usr/local/sbin"])
}

fn find_program(name: &str, extra: &[&str]) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(extra.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::Missing {
        tool: name.into(),
        looked: format!("$PATH and {extra:?}"),
    })
}

fn contains_dir(lib: &Path, suffix: &str) -> bool {
    // <venv>/lib/pythonX.Y/site-packages/...
    fs::read_dir(lib)
        .map(|entries| {
            entries
                .flatten()
                .any(|entry| entry.path().join(suffix).is_dir())
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Broker

/// Which broker a test runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerKind {
    /// The `wardgate` binary at this path.
    Wardgate(PathBuf),
    /// Mosquitto, as a reference for differential checks.
    Mosquitto,
}

impl BrokerKind {
    /// `$WARDGATE_TEST_BROKER` (`wardgate` or `mosquitto`), Wardgate at `wardgate_exe` by default.
    pub fn from_env(wardgate_exe: &Path) -> Result<BrokerKind, Error> {
        match std::env::var(BROKER_ENV).as_deref() {
            Err(_) | Ok("") | Ok("wardgate") => Ok(BrokerKind::Wardgate(wardgate_exe.to_owned())),
            Ok("mosquitto") => Ok(BrokerKind::Mosquitto),
            Ok(other) => Err(Error::Io {
                what: format!("{BROKER_ENV}={other}"),
                source: io::Error::new(io::ErrorKind::InvalidInput, "use wardgate or mosquitto"),
            }),
        }
    }

    /// Whether this is Mosquitto (some journeys note where the reference behaves differently).
    pub fn is_mosquitto(&self) -> bool {
        matches!(self, BrokerKind::Mosquitto)
    }
}

/// The ports of a test broker: two plain MQTT ports and one MQTT-over-WebSocket port (`/mqtt`),
/// all reached at 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerPorts {
    /// First `protocol: Mqtt` port.
    pub mqtt: u16,
    /// Second `protocol: Mqtt` port.
    pub mqtt2: u16,
    /// `protocol: WebSockets` port.
    pub ws: u16,
}

impl BrokerPorts {
    fn pick() -> Result<BrokerPorts, Error> {
        Ok(BrokerPorts {
            mqtt: free_port()?,
            mqtt2: free_port()?,
            ws: free_port()?,
        })
    }

    fn all(self) -> [u16; 3] {
        [self.mqtt, self.mqtt2, self.ws]
    }

    /// `ws://127.0.0.1:<ws>/mqtt`.
    pub fn ws_url(self) -> String {
        format!("ws://127.0.0.1:{}/mqtt", self.ws)
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn tcp_url(port: u16) -> String {
        format!("mqtt://127.0.0.1:{port}")
    }
}

/// A broker process on fresh ports, with its own config and data folders; killed on drop, which
/// then prints the tail of its log (shown by the test runner only when the test fails).
pub struct Broker {
    kind: BrokerKind,
    ports: BrokerPorts,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("kind", &self.kind)
            .field("ports", &self.ports)
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Broker {
    /// Starts the broker chosen by `$WARDGATE_TEST_BROKER` (Wardgate at `wardgate_exe` unless
    /// it says `mosquitto`) and waits until every port accepts TCP.
    pub fn start(wardgate_exe: &Path) -> Result<Broker, Error> {
        Broker::start_kind(BrokerKind::from_env(wardgate_exe)?)
    }

    /// Starts the given broker on fresh ports and waits until every port accepts TCP.
    ///
    /// A broker that exits while starting (say, another test took a port first) is retried on
    /// new ports, twice.
    pub fn start_kind(kind: BrokerKind) -> Result<Broker, Error> {
        let mut last = None;
        for _ in 0..3 {
            match Broker::start_once(kind.clone()) {
                Ok(broker) => return Ok(broker),
                Err(err @ Error::Broker { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| Error::Broker {
            what: "never started".into(),
            log: String::new(),
        }))
    }

    fn start_once(kind: BrokerKind) -> Result<Broker, Error> {
        let dir = tempfile::Builder::new()
            .prefix("wardgate-e2e-")
            .tempdir()
            .map_err(io_error("creating the broker's temporary folder"))?;
        let ports = BrokerPorts::pick()?;
        let log = dir.path().join("broker.log");
        let mut cmd = match &kind {
            BrokerKind::Wardgate(exe) => wardgate_command(exe, dir.path(), ports)?,
            BrokerKind::Mosquitto => mosquitto_command(dir.path(), ports)?,
        };
        let log_file = File::create(&log).map_err(io_error("creating the broker log"))?;
        let log_err = log_file
            .try_clone()
            .map_err(io_error("duplicating the broker log"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(io_error(format!("starting `{}`", describe(&cmd))))?;
        let mut broker = Broker {
            kind,
            ports,
            child,
            log,
            dir,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        for port in self.ports.all() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(Error::Broker {
                        what: format!("{:?} exited while starting: {status}", self.kind),
                        log: self.log_tail(),
                    });
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("{:?} to accept connections on {addr}", self.kind),
                        after: BROKER_START_TIMEOUT,
                        output: self.log_tail(),
                    });
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Which broker this is.
    pub fn kind(&self) -> &BrokerKind {
        &self.kind
    }

    /// Its ports.
    pub fn ports(&self) -> BrokerPorts {
        self.ports
    }

    /// Its config and data folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let alive = matches!(self.child.try_wait(), Ok(None));
        if alive {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // The log lives in the temporary folder: keep a copy with the others.
        let copy = log_dir().join(format!("broker-{}.log", self.child.id()));
        if fs::create_dir_all(log_dir()).is_ok() {
            let _ = fs::copy(&self.log, copy);
        }
        // Shown by the test runner only for a failing test.
        eprintln!(
            "--- {:?} on {:?} ({}), log tail:\n{}",
            self.kind,
            self.ports,
            if alive {
                "killed at the end of the test"
            } else {
                "had already exited"
            },
            self.log_tail()
        );
    }
}

/// `<wardgate_exe> serve --config <config> --data-dir <data>` (with `--admin-addr
/// 127.0.0.1:<admin>` when given), without `WARDGATE_LOG` from the test's environment, so that
/// the configuration decides the logs.
pub fn serve_command(
    wardgate_exe: &Path,
    config: &Path,
    data: &Path,
    admin: Option<u16>,
) -> Command {
    let mut cmd = Command::new(wardgate_exe);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env_remove("WARDGATE_LOG");
    if let Some(port) = admin {
        cmd.arg("--admin-addr").arg(format!("127.0.0.1:{port}"));
    }
    cmd
}

/// The BrokerListener that opens the three ports, as a user would write it. It replaces the
/// built-in `default` listener and is ClusterIp, so every port listens on loopback only.
pub fn listener_yaml(ports: BrokerPorts) -> String {
    resources::listener(
        &(resources::mqtt_port(ports.mqtt)
            + &resources::mqtt_port(ports.mqtt2)
            + &resources::port(ports.ws, "WebSockets")),
    )
}

fn wardgate_command(exe: &Path, dir: &Path, ports: BrokerPorts) -> Result<Command, Error> {
    let config = dir.join("config");
    fs::create_dir(&config).map_err(io_error("creating the config folder"))?;
    fs::write(config.join("listener.yaml"), listener_yaml(ports))
        .map_err(io_error("writing listener.yaml"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("NO_COLOR", "1");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    Ok(cmd)
}

fn mosquitto_command(dir: &Path, ports: BrokerPorts) -> Result<Command, Error> {
    let conf = dir.join("mosquitto.conf");
    let text = format!(
        "# Equivalent of listener_yaml() for Mosquitto.
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type all
listener {} 127.0.0.1
listener {} 127.0.0.1
listener {} 127.0.0.1
protocol websockets
",
        ports.mqtt, ports.mqtt2, ports.ws
    );
    fs::write(&conf, text).map_err(io_error("writing mosquitto.conf"))?;
    let mut cmd = Command::new(mosquitto()?);
    cmd.arg("-c").arg(conf);
    Ok(cmd)
}

#[cfg(test)]
mod tests;
