//! The client commands: a table of command words, the flags each accepts and its handler,
//! plus the helpers every handler shares (connecting, printing a secret, failing the way
//! vault fails: usage errors exit 1, request errors exit 2).

use serde_json::Value;

use crate::args::{self, Flag, Parsed, UsageError};
use crate::client::{ApiError, Client, Settings};
use crate::output::{self, Format};

mod audit_report;
mod kv;
mod lease;
mod logical;
mod login;
mod mounts;
mod operator;
mod policy;
mod status;
mod token;

/// A command's failure: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

pub type CmdResult = Result<i32, Exit>;

impl Exit {
    /// A wrong command line (exit 1).
    pub fn usage(message: impl Into<String>) -> Exit {
        Exit {
            code: 1,
            message: message.into(),
        }
    }

    /// A failed request, prefixed the way vault words it (exit 2).
    pub fn api(context: impl std::fmt::Display, err: &ApiError) -> Exit {
        Exit {
            code: 2,
            message: format!("{context}: {err}"),
        }
    }

    /// Any other failure with an explicit code.
    pub fn with_code(code: i32, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }
}

impl From<UsageError> for Exit {
    fn from(e: UsageError) -> Exit {
        Exit::usage(e.0)
    }
}

/// Flags every client command accepts.
const COMMON: &[Flag] = &[
    Flag::string(&["address"]),
    Flag::string(&["ca-cert"]),
    Flag::string(&["ca-path"]),
    Flag::string(&["client-cert"]),
    Flag::string(&["client-key"]),
    Flag::boolean(&["tls-skip-verify"]),
    Flag::string(&["wrap-ttl"]),
    Flag::multi(&["header"]),
    Flag::string(&["namespace", "ns"]),
    Flag::string(&["format"]),
    Flag::string(&["field"]),
    Flag::boolean(&["non-interactive"]),
];

/// Everything a handler needs: its parsed flags and arguments, the output format and a
/// client configured from flags and environment.
pub struct Ctx {
    pub flags: Parsed,
    pub format: Format,
    pub field: Option<String>,
    pub client: Client,
}

impl Ctx {
    pub fn args(&self) -> &[String] {
        &self.flags.args
    }

    /// A duration flag as `"<seconds>s"`, which every Vault duration parser accepts.
    /// Reads a secret the user did not give on the command line, unless `-non-interactive`.
    pub fn prompt(&self, prompt: &str, what: &str) -> Result<String, Exit> {
        if self.flags.bool("non-interactive") {
            return Err(Exit::usage(format!(
                "{what} required but -non-interactive was given"
            )));
        }
        prompt_line(prompt)
    }

    pub fn duration_flag(&self, name: &str) -> Result<Option<String>, Exit> {
        match self.flags.get(name) {
            None => Ok(None),
            Some(v) => Ok(Some(format!("{}s", args::parse_duration_secs(v)?))),
        }
    }

    /// Prints a "Success! ..." line: only in table format, since JSON output of a body-less
    /// answer is empty (scripts parse stdout).
    pub fn success(&self, message: &str) {
        if self.format.is_table() {
            output::outln(message);
        }
    }

    /// Prints the value `-field` selected (`what` names the container in the error, as
    /// vault does: "secret", "map").
    pub fn print_field(&self, value: Option<&Value>, field: &str, what: &str) -> CmdResult {
        match value {
            Some(v) => {
                output::raw_value(&output::field_text(self.format, v));
                Ok(0)
            }
            None => Err(Exit::usage(format!(
                "Field \"{field}\" not present in {what}"
            ))),
        }
    }

    /// Prints a secret in the chosen format; `-field` selects one value.
    pub fn print_secret(&self, secret: &Value) -> CmdResult {
        if let Some(field) = &self.field {
            return self.print_field(output::secret_field(secret, field), field, "secret");
        }
        match self.format {
            Format::Json | Format::Yaml => {
                output::outln(&self.format.document(&output::secret_json(secret)))
            }
            Format::Table => {
                let pairs = output::secret_pairs(secret);
                if !pairs.is_empty() {
                    output::out(&output::kv_table(&pairs));
                }
                if let Some(w) = output::warnings_text(secret) {
                    output::errln(&w);
                }
            }
        }
        Ok(0)
    }

    /// Prints a plain object (a raw `sys/` body) in the chosen format.
    pub fn print_object(&self, data: &Value) -> CmdResult {
        if let Some(field) = &self.field {
            return self.print_field(data.get(field), field, "secret");
        }
        match self.format {
            Format::Json | Format::Yaml => output::outln(&self.format.document(data)),
            Format::Table => {
                if let Some(map) = data.as_object() {
                    output::out(&output::kv_table(&output::data_pairs(map)));
                }
            }
        }
        Ok(0)
    }

    /// Prints the keys of a LIST answer; none is "No value found" (exit 2).
    pub fn print_list(&self, secret: Option<&Value>, path: &str) -> CmdResult {
        let keys = secret
            .and_then(|s| s.get("data"))
            .and_then(|d| d.get("keys"))
            .and_then(Value::as_array);
        let Some(keys) = keys else {
            if !self.format.is_table() {
                output::outln("{}");
                return Ok(2);
            }
            return Err(Exit::with_code(2, format!("No value found at {path}")));
        };
        match self.format {
            Format::Json | Format::Yaml => {
                output::outln(&self.format.document(&Value::Array(keys.clone())))
            }
            Format::Table => {
                let mut rows = vec![vec!["Keys".to_string()]];
                rows.extend(keys.iter().map(|k| vec![output::go_value(k)]));
                output::out(&output::table(&rows));
            }
        }
        Ok(0)
    }
}

/// One command: its words (`["kv", "metadata", "get"]`), flags, handler and a line of help.
struct Command {
    words: &'static [&'static str],
    /// Flag sets on top of [`COMMON`] (sets let commands share groups of flags).
    flags: &'static [&'static [Flag]],
    run: fn(&mut Ctx) -> CmdResult,
    help: &'static str,
}

/// Every client command, in the order help lists them.
fn table() -> Vec<Command> {
    let mut all = Vec::new();
    all.extend(status::commands());
    all.extend(operator::commands());
    all.extend(login::commands());
    all.extend(logical::commands());
    all.extend(mounts::commands());
    all.extend(policy::commands());
    all.extend(token::commands());
    all.extend(kv::commands());
    all.extend(lease::commands());
    all.extend(audit_report::commands());
    all
}

fn usage_text(commands: &[Command]) -> String {
    let mut text = String::from(
        "Usage: lessor <command> [args]\n\nCommands:\n    server                    Start a lessor server\n",
    );
    for c in commands {
        text.push_str(&format!("    {:<26}{}\n", c.words.join(" "), c.help));
    }
    text
}

/// `lessor <command> -h`: the synopsis and every flag the command takes.
fn command_help(command: &Command) -> String {
    let mut text = format!(
        "Usage: lessor {} [options] [args]\n\n  {}\n\nCommand options:\n",
        command.words.join(" "),
        command.help
    );
    let describe = |f: &Flag| match f.kind {
        args::Kind::Bool => format!("-{}", f.names.join(", -")),
        args::Kind::Str => format!("-{}=<value>", f.names[0]),
        args::Kind::Multi => format!("-{}=<value> (repeatable)", f.names[0]),
    };
    for f in command.flags.iter().flat_map(|set| set.iter()) {
        text.push_str(&format!("  {}\n", describe(f)));
    }
    text.push_str("\nCommon options:\n");
    for f in COMMON {
        text.push_str(&format!("  {}\n", describe(f)));
    }
    text
}

/// Runs a client command line (without the program name); returns the exit code.
pub fn run(argv: &[String]) -> i32 {
    let commands = table();
    // The longest run of command words wins: `kv metadata get` before `kv`.
    let found = commands
        .iter()
        .filter(|c| c.words.len() <= argv.len() && c.words.iter().zip(argv).all(|(w, a)| w == a))
        .max_by_key(|c| c.words.len());
    let Some(command) = found else {
        let is_help = |a: &String| matches!(a.as_str(), "-h" | "-help" | "--help" | "help");
        // A group word alone (`lessor kv`) lists that group's commands.
        let group: Vec<&str> = argv
            .iter()
            .take_while(|a| !is_help(a))
            .map(String::as_str)
            .collect();
        let members: Vec<&Command> = commands
            .iter()
            .filter(|c| !group.is_empty() && c.words.starts_with(&group))
            .collect();
        let text = if members.is_empty() {
            usage_text(&commands)
        } else {
            let mut t = format!(
                "Usage: lessor {} <subcommand> [options] [args]\n\nSubcommands:\n",
                group.join(" ")
            );
            for c in members {
                t.push_str(&format!("    {:<26}{}\n", c.words.join(" "), c.help));
            }
            t
        };
        output::errln(&text);
        return if argv.iter().any(is_help) { 0 } else { 127 };
    };
    let rest = &argv[command.words.len()..];
    if rest
        .first()
        .is_some_and(|a| matches!(a.as_str(), "-h" | "-help" | "--help"))
    {
        output::errln(&command_help(command));
        return 0;
    }
    match prepare(command, rest).and_then(|mut ctx| (command.run)(&mut ctx)) {
        Ok(code) => code,
        Err(e) => {
            if !e.message.is_empty() {
                output::errln(&e.message);
            }
            e.code
        }
    }
}

fn prepare(command: &Command, rest: &[String]) -> Result<Ctx, Exit> {
    let mut sets = vec![COMMON];
    sets.extend_from_slice(command.flags);
    let flags = args::parse(&sets, rest)?;
    let format = Format::resolve(flags.get("format"))?;
    let late = flags.late_flags(COMMON);
    if !late.is_empty() && format.is_table() {
        output::errln(&format!(
            "Command flags must be provided before positional arguments. The following arguments will not be parsed as flags: [{}]",
            late.join(",")
        ));
    }
    let field = flags.get("field").map(str::to_string);
    let client = Client::new(Settings::resolve(&flags)).map_err(|e| Exit::with_code(2, e))?;
    Ok(Ctx {
        flags,
        format,
        field,
        client,
    })
}

/// An I/O error worded as Go words it ("no such file or directory"), without Rust's
/// "(os error N)" suffix.
pub fn io_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => text,
    }
}

/// Trims the slashes users add around a path.
pub fn sanitize_path(p: &str) -> String {
    p.trim().trim_matches('/').to_string()
}

/// Request data from positional `k=v` arguments (and `@file`, `-`).
pub fn kv_data(args: &[String]) -> Result<serde_json::Map<String, Value>, Exit> {
    let mut stdin = std::io::stdin();
    args::parse_kv_data(args, &mut stdin)
        .map_err(|e| Exit::usage(format!("Failed to parse K=V data: {e}")))
}

/// `k=v` data as query parameters (a list value repeats the key).
pub fn query_pairs(data: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in data {
        match v {
            Value::Array(items) => {
                out.extend(items.iter().map(|i| (k.clone(), output::go_value(i))));
            }
            other => out.push((k.clone(), output::go_value(other))),
        }
    }
    out
}

/// Reads one line from stdin after printing a prompt on stderr (unseal keys, tokens). On a
/// terminal the typed secret is not echoed (`stty -echo`, so no extra dependency).
fn prompt_line(prompt: &str) -> Result<String, Exit> {
    use std::io::IsTerminal;
    let _ = std::io::Write::write_all(&mut std::io::stderr(), prompt.as_bytes());
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if tty {
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if tty {
        stty("echo");
        output::errln("");
    }
    read.map_err(|e| Exit::usage(format!("error reading from stdin: {e}")))?;
    Ok(line.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_reachable_and_unique() {
        let commands = table();
        let mut names: Vec<String> = commands.iter().map(|c| c.words.join(" ")).collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(before, names.len());
        for required in [
            "status",
            "operator init",
            "operator unseal",
            "operator seal",
            "login",
            "read",
            "write",
            "list",
            "delete",
            "secrets enable",
            "secrets disable",
            "secrets list",
            "secrets tune",
            "auth enable",
            "auth disable",
            "auth list",
            "policy write",
            "policy read",
            "policy list",
            "policy delete",
            "token create",
            "token lookup",
            "token renew",
            "token revoke",
            "kv get",
            "kv put",
            "kv patch",
            "kv delete",
            "kv list",
            "kv undelete",
            "kv destroy",
            "kv metadata get",
            "kv metadata put",
            "kv metadata delete",
            "lease lookup",
            "lease renew",
            "lease revoke",
        ] {
            assert!(names.contains(&required.to_string()), "{required}");
        }
    }

    #[test]
    fn query_from_data() {
        let data = serde_json::json!({"a": "1", "b": ["x", "y"]});
        let q = query_pairs(data.as_object().unwrap());
        assert_eq!(
            q,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x".to_string()),
                ("b".to_string(), "y".to_string())
            ]
        );
    }
}
