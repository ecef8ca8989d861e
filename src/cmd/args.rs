//! A small argument reader for the FreeS/WAN-style command lines (`--name value`, `--flag`).

/// Why a command line was refused. Displayed as the command's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(pub String);

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CmdError {}

impl From<String> for CmdError {
    fn from(s: String) -> CmdError {
        CmdError(s)
    }
}

/// Shorthand for an error result.
pub fn err<T>(msg: impl Into<String>) -> Result<T, CmdError> {
    Err(CmdError(msg.into()))
}

/// Parsed options: each `--name` with the values that followed it, in order.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    items: Vec<(String, Option<String>)>,
    /// Arguments that were not options (operands).
    pub operands: Vec<String>,
}

impl Opts {
    /// Splits `args` into options and operands. `with_value` lists options that take a value.
    pub fn parse(args: &[String], with_value: &[&str]) -> Result<Opts, CmdError> {
        let mut o = Opts::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (name, None),
                };
                if with_value.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| CmdError(format!("option --{name} needs a value")))?,
                    };
                    o.items.push((name.to_string(), Some(v)));
                } else if inline.is_some() {
                    return err(format!("option --{name} takes no value"));
                } else {
                    o.items.push((name.to_string(), None));
                }
            } else {
                o.operands.push(a.clone());
            }
        }
        Ok(o)
    }

    /// Whether `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| n == name)
    }

    /// The value of `--name` (the last one if repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The value of `--name`, or an error naming it.
    pub fn need(&self, name: &str) -> Result<&str, CmdError> {
        self.get(name)
            .ok_or_else(|| CmdError(format!("missing --{name}")))
    }

    /// Every option name given, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(n, _)| n.as_str())
    }

    /// Refuses any option not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), CmdError> {
        for n in self.names() {
            if !known.contains(&n) {
                return err(format!("unknown option --{n}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_and_operands() {
        let o = Opts::parse(
            &v("--add --src 10.0.0.0/8 --dst=1.2.3.4 x"),
            &["src", "dst"],
        )
        .unwrap();
        assert!(o.has("add"));
        assert_eq!(o.get("src"), Some("10.0.0.0/8"));
        assert_eq!(o.get("dst"), Some("1.2.3.4"));
        assert_eq!(o.operands, vec!["x"]);
        assert!(Opts::parse(&v("--src"), &["src"]).is_err());
        assert!(o.only(&["add", "src"]).is_err());
    }
}
