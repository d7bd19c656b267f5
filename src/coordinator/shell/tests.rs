//! Unit tests of [`super`] (shell.rs).

use super::*;

fn parse(line: &str) -> Result<ShellCommand, String> {
    let words: Vec<String> = line.split_whitespace().map(String::from).collect();
    parse_command(&words).map_err(|error| error.to_string())
}

#[test]
fn flags_are_parsed_as_zkcli_does() {
    assert_eq!(
        parse("ls -R /brokers"),
        Ok(ShellCommand::Ls {
            path: "/brokers".into(),
            stat: false,
            recursive: true
        })
    );
    assert_eq!(
        parse("ls / -s"),
        Ok(ShellCommand::Ls {
            path: "/".into(),
            stat: true,
            recursive: false
        })
    );
    assert_eq!(
        parse("get -s /controller"),
        Ok(ShellCommand::Get {
            path: "/controller".into(),
            stat: true
        })
    );
    assert_eq!(
        parse("create -es /q/item- x"),
        Ok(ShellCommand::Create {
            path: "/q/item-".into(),
            data: "x".into(),
            ephemeral: true,
            sequential: true
        })
    );
    assert_eq!(
        parse("set /a v2 -v 3"),
        Ok(ShellCommand::Set {
            path: "/a".into(),
            data: "v2".into(),
            version: Some(3),
            stat: false
        })
    );
    assert_eq!(
        parse("set -v3 -- /a -1"),
        Ok(ShellCommand::Set {
            path: "/a".into(),
            data: "-1".into(),
            version: Some(3),
            stat: false
        })
    );
}

#[test]
fn unknown_flags_and_wrong_arguments_are_usage_errors() {
    for (line, wanted) in [
        ("ls -x /", "ls: unknown option -x; usage: ls [-s] [-R] PATH"),
        ("get -R /a", "get: unknown option -R"),
        ("stat -s /a", "stat: unknown option -s"),
        ("ls -w /", "-w (watch) is not supported"),
        ("delete -v", "delete: -v needs a value"),
        ("delete -v x /a", "version is not a number: x"),
        ("ls", "ls: 0 arguments given"),
        ("get /a /b", "get: 2 arguments given"),
        ("set /a", "set: 1 argument given"),
        ("frobnicate /", "unknown command frobnicate"),
    ] {
        let error = parse(line).expect_err(line);
        assert!(error.contains(wanted), "{line}: {error}");
    }
    let words = vec!["ls".to_string(), "-x".to_string(), "/".to_string()];
    assert_eq!(parse_command(&words).expect_err("-x").exit_code(), 2);
}
