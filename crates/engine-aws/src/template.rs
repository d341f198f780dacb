//! A small evaluator for the Go text/template subset that user name templates use:
//! `{{ .Field }}`, pipelines with `|`, parenthesised calls, `if`/`else`/`end`, string and
//! integer literals, and the functions `printf`, `truncate`, `unix_time`,
//! `unix_time_millis`, `random`, `uppercase`, `lowercase`, `replace` and `eq`.

use std::collections::BTreeMap;

/// The default template: `vault-<unix>-<random20>` cut to 32 for STS, and
/// `vault-<DisplayName>-<PolicyName>` (cut to 42) `-<unix>-<random20>` cut to 64 for users.
pub const DEFAULT_USERNAME_TEMPLATE: &str = r#"{{ if (eq .Type "STS") }}{{ printf "vault-%s-%s" (unix_time) (random 20) | truncate 32 }}{{ else }}{{ printf "vault-%s-%s-%s" (printf "%s-%s" (.DisplayName) (.PolicyName) | truncate 42) (unix_time) (random 20) | truncate 64 }}{{ end }}"#;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
}

type Pipeline = Vec<Vec<Arg>>;

#[derive(Debug, Clone)]
enum Arg {
    Field(String),
    Str(String),
    Int(i64),
    Func(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => b.to_string(),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Int(i) => *i != 0,
            Val::Bool(b) => *b,
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

enum Piece {
    Text(String),
    Action(String),
}

/// Splits text and `{{ }}` actions, applying `{{-` / `-}}` whitespace trimming.
fn split(src: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed action".to_string())?;
        let mut inner = &after[..end];
        if let Some(s) = inner.strip_prefix('-') {
            text = text.trim_end().to_string();
            inner = s;
        }
        trim_next = false;
        if let Some(s) = inner.strip_suffix('-') {
            trim_next = true;
            inner = s;
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        out.push(Piece::Action(inner.trim().to_string()));
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Piece::Text(text.to_string()));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Pipe,
    Str(String),
    Int(i64),
    Field(String),
    Ident(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '"' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => lit.push('\n'),
                                Some('t') => lit.push('\t'),
                                Some(c) => lit.push(*c),
                                None => return Err("unterminated string".into()),
                            }
                        }
                        Some(c) => lit.push(*c),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(lit));
            }
            _ => {
                let start = i;
                while i < chars.len() && !" \t\n\r()|\"".contains(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if let Some(f) = word.strip_prefix('.') {
                    out.push(Tok::Field(f.to_string()));
                } else if let Ok(n) = word.parse::<i64>() {
                    out.push(Tok::Int(n));
                } else {
                    out.push(Tok::Ident(word));
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn pipeline(&mut self) -> Result<Pipeline, String> {
        let mut cmds = vec![self.command()?];
        while self.toks.get(self.pos) == Some(&Tok::Pipe) {
            self.pos += 1;
            cmds.push(self.command()?);
        }
        Ok(cmds)
    }

    fn command(&mut self) -> Result<Vec<Arg>, String> {
        let mut args = Vec::new();
        while let Some(t) = self.toks.get(self.pos).cloned() {
            match t {
                Tok::Pipe | Tok::Close => break,
                Tok::Open => {
                    self.pos += 1;
                    let sub = self.pipeline()?;
                    if self.toks.get(self.pos) != Some(&Tok::Close) {
                        return Err("unclosed left paren".into());
                    }
                    self.pos += 1;
                    args.push(Arg::Sub(sub));
                }
                Tok::Str(s) => {
                    self.pos += 1;
                    args.push(Arg::Str(s));
                }
                Tok::Int(n) => {
                    self.pos += 1;
                    args.push(Arg::Int(n));
                }
                Tok::Field(f) => {
                    self.pos += 1;
                    args.push(Arg::Field(f));
                }
                Tok::Ident(f) => {
                    self.pos += 1;
                    if !FUNCS.contains(&f.as_str()) {
                        return Err(format!("function \"{f}\" not defined"));
                    }
                    args.push(Arg::Func(f));
                }
            }
        }
        if args.is_empty() {
            return Err("missing value for command".into());
        }
        Ok(args)
    }
}

const FUNCS: &[&str] = &[
    "printf",
    "truncate",
    "unix_time",
    "unix_time_millis",
    "random",
    "uppercase",
    "lowercase",
    "replace",
    "eq",
];

fn parse_pipeline(src: &str) -> Result<Pipeline, String> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let pl = p.pipeline()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected token in {src:?}"));
    }
    Ok(pl)
}

/// Builds the node tree; `stop` tells which keywords end the current block.
fn nodes(
    pieces: &mut std::iter::Peekable<std::vec::IntoIter<Piece>>,
    in_if: bool,
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut out = Vec::new();
    while let Some(p) = pieces.next() {
        match p {
            Piece::Text(t) => out.push(Node::Text(t)),
            Piece::Action(a) if a == "end" || a == "else" => {
                if !in_if {
                    return Err(format!("unexpected {{{{{a}}}}}"));
                }
                return Ok((out, Some(a)));
            }
            Piece::Action(a) if a.starts_with("if ") || a.starts_with("if(") => {
                let cond = parse_pipeline(&a[2..])?;
                let (then, stop) = nodes(pieces, true)?;
                let otherwise = match stop.as_deref() {
                    Some("else") => {
                        let (e, stop) = nodes(pieces, true)?;
                        if stop.as_deref() != Some("end") {
                            return Err("expected {{end}}".into());
                        }
                        e
                    }
                    Some("end") => Vec::new(),
                    _ => return Err("unexpected EOF: missing {{end}}".into()),
                };
                out.push(Node::If(cond, then, otherwise));
            }
            Piece::Action(a) if a.starts_with("/*") => {}
            Piece::Action(a) => out.push(Node::Action(parse_pipeline(&a)?)),
        }
    }
    if in_if {
        return Err("unexpected EOF: missing {{end}}".into());
    }
    Ok((out, None))
}

/// Go's `printf` for the verbs templates use: `%s`, `%d`, `%v`, `%%`.
fn printf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(v) => match args.next() {
                Some(a) => out.push_str(&a.text()),
                None => out.push_str(&format!("%!{v}(MISSING)")),
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

fn random_string(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let mut pieces = split(src)?.into_iter().peekable();
        let (nodes, _) = nodes(&mut pieces, false)?;
        Ok(Template { nodes })
    }

    pub fn render(&self, data: &BTreeMap<&str, String>) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

fn render_nodes(
    nodes: &[Node],
    data: &BTreeMap<&str, String>,
    out: &mut String,
) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&eval_pipeline(p, data)?.text()),
            Node::If(cond, then, otherwise) => {
                let branch = if eval_pipeline(cond, data)?.truthy() {
                    then
                } else {
                    otherwise
                };
                render_nodes(branch, data, out)?;
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, data: &BTreeMap<&str, String>) -> Result<Val, String> {
    let mut prev: Option<Val> = None;
    for cmd in p {
        prev = Some(eval_command(cmd, prev.take(), data)?);
    }
    prev.ok_or_else(|| "empty pipeline".to_string())
}

fn eval_arg(a: &Arg, data: &BTreeMap<&str, String>) -> Result<Val, String> {
    match a {
        Arg::Field(f) => data
            .get(f.as_str())
            .map(|v| Val::Str(v.clone()))
            .ok_or_else(|| format!("can't evaluate field {f}")),
        Arg::Str(s) => Ok(Val::Str(s.clone())),
        Arg::Int(n) => Ok(Val::Int(*n)),
        Arg::Sub(p) => eval_pipeline(p, data),
        Arg::Func(f) => call(f, &[]),
    }
}

fn eval_command(
    cmd: &[Arg],
    piped: Option<Val>,
    data: &BTreeMap<&str, String>,
) -> Result<Val, String> {
    let (head, rest) = cmd
        .split_first()
        .ok_or_else(|| "empty command".to_string())?;
    match head {
        Arg::Func(f) => {
            let mut args = rest
                .iter()
                .map(|a| eval_arg(a, data))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            call(f, &args)
        }
        _ if rest.is_empty() && piped.is_none() => eval_arg(head, data),
        _ => Err("can't give arguments to a non-function".into()),
    }
}

fn int_arg(v: &Val) -> Result<i64, String> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Str(s) => s
            .parse()
            .map_err(|_| format!("expected an integer, got {s:?}")),
        Val::Bool(_) => Err("expected an integer".into()),
    }
}

fn call(f: &str, args: &[Val]) -> Result<Val, String> {
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {f}: want {n} got {}",
                args.len()
            ))
        }
    };
    let now = time::OffsetDateTime::now_utc();
    Ok(match f {
        "printf" => {
            let (fmt, rest) = args
                .split_first()
                .ok_or_else(|| "printf needs a format".to_string())?;
            Val::Str(printf(&fmt.text(), rest))
        }
        "truncate" => {
            want(2)?;
            let n = int_arg(&args[0])?;
            if n < 0 {
                return Err("truncate length must be non-negative".into());
            }
            Val::Str(args[1].text().chars().take(n as usize).collect())
        }
        "unix_time" => {
            want(0)?;
            Val::Str(now.unix_timestamp().to_string())
        }
        "unix_time_millis" => {
            want(0)?;
            Val::Str((now.unix_timestamp_nanos() / 1_000_000).to_string())
        }
        "random" => {
            want(1)?;
            let n = int_arg(&args[0])?;
            if !(1..=1000).contains(&n) {
                return Err("random length must be between 1 and 1000".into());
            }
            Val::Str(random_string(n as usize))
        }
        "uppercase" => {
            want(1)?;
            Val::Str(args[0].text().to_uppercase())
        }
        "lowercase" => {
            want(1)?;
            Val::Str(args[0].text().to_lowercase())
        }
        "replace" => {
            want(3)?;
            Val::Str(args[2].text().replace(&args[0].text(), &args[1].text()))
        }
        "eq" => {
            want(2)?;
            Val::Bool(args[0].text() == args[1].text())
        }
        other => return Err(format!("function \"{other}\" not defined")),
    })
}

/// Replaces characters AWS names do not allow (`[A-Za-z0-9+=,.@_-]`) with `_`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The kind of name being generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// IAM user names and generated AssumeRole session names: at most 64.
    Iam,
    /// Federation token names: at most 32.
    Sts,
}

/// Generates a name from the configured template, checked against AWS's length limit.
pub fn generate(
    template: &str,
    kind: NameKind,
    display_name: &str,
    role_name: &str,
) -> Result<String, String> {
    let t = Template::parse(template)
        .map_err(|e| format!("unable to initialize username template: {e}"))?;
    let policy = sanitize(role_name);
    let mut data = BTreeMap::new();
    data.insert(
        "Type",
        if kind == NameKind::Sts { "STS" } else { "IAM" }.to_string(),
    );
    data.insert("DisplayName", sanitize(display_name));
    data.insert("PolicyName", policy.clone());
    data.insert("RoleName", policy);
    let name = t
        .render(&data)
        .map_err(|e| format!("failed to generate username: {e}"))?;
    let max = if kind == NameKind::Sts { 32 } else { 64 };
    if name.chars().count() > max {
        return Err(format!(
            "the username generated by the template exceeds the max length of {max}"
        ));
    }
    if name.is_empty() {
        return Err("the username template generated an empty name".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_iam_name() {
        let n = generate(
            DEFAULT_USERNAME_TEMPLATE,
            NameKind::Iam,
            "token-ci",
            "developer-access",
        )
        .unwrap();
        let re =
            regex::Regex::new(r"^vault-token-ci-developer-access-\d{10}-[A-Za-z0-9]{20}$").unwrap();
        assert!(re.is_match(&n), "{n}");
    }

    #[test]
    fn default_names_are_cut() {
        let long = "x".repeat(80);
        let n = generate(DEFAULT_USERNAME_TEMPLATE, NameKind::Iam, &long, &long).unwrap();
        assert!(n.len() <= 64);
        assert!(n.starts_with(&format!("vault-{}", "x".repeat(42))));
        let s = generate(DEFAULT_USERNAME_TEMPLATE, NameKind::Sts, &long, &long).unwrap();
        assert_eq!(s.len(), 32);
        assert!(s.starts_with("vault-"));
    }

    #[test]
    fn sanitizes_display_names() {
        let n = generate(
            "{{.DisplayName}}/{{.RoleName}}",
            NameKind::Iam,
            "a b:c",
            "r!",
        )
        .unwrap();
        assert_eq!(n, "a_b_c/r_");
    }

    #[test]
    fn custom_templates() {
        let n = generate(
            r#"my-{{ .PolicyName | uppercase }}-{{ random 5 | truncate 3 }}"#,
            NameKind::Iam,
            "d",
            "dev",
        )
        .unwrap();
        assert!(n.starts_with("my-DEV-") && n.len() == 10, "{n}");
        let n = generate(
            r#"{{- "  a" -}}  {{ replace "-" "_" .DisplayName }}"#,
            NameKind::Iam,
            "x-y",
            "r",
        )
        .unwrap();
        assert_eq!(n, "  ax_y");
        let e = generate(
            &format!("{{{{ printf \"%s\" \"{}\" }}}}", "z".repeat(70)),
            NameKind::Iam,
            "",
            "",
        )
        .unwrap_err();
        assert!(e.contains("max length of 64"), "{e}");
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("{{ nosuch 1 }}").is_err());
        assert!(Template::parse("{{ if .Type }}x").is_err());
        assert!(Template::parse("{{ .X").is_err());
    }
}
