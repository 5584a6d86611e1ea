//! Help that stands alone: every flag of every subcommand has a description, and every
//! optional one shows its default (clap's `[default: ..]` or one written in the text).

use clap::CommandFactory;

use crate::Cli;

fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let name = format!("{path} --{}", arg.get_long().unwrap_or(id));
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        if help.trim().is_empty() {
            problems.push(format!("{name}: no description"));
            continue;
        }
        let shows_default =
            !arg.get_default_values().is_empty() || help.to_lowercase().contains("default");
        if !arg.is_required_set() && !arg.is_positional() && !shows_default {
            problems.push(format!("{name}: no default shown"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_about().is_none() {
            problems.push(format!("{path} {}: no description", sub.get_name()));
        }
        walk(sub, &format!("{path} {}", sub.get_name()), problems);
    }
}

#[test]
fn every_flag_has_a_description_and_shows_its_default() {
    let mut problems = Vec::new();
    walk(&Cli::command(), "rgrad", &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn train_help_groups_flags_and_ends_with_three_examples() {
    let mut cmd = Cli::command();
    let train = cmd.find_subcommand_mut("train").unwrap();
    let help = train.render_long_help().to_string();
    let mut at = 0;
    for heading in [
        "Data:",
        "Model:",
        "Optimisation:",
        "Evaluation and checkpoints:",
        "Output:",
        "Examples:",
    ] {
        let pos = help[at..]
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} missing or out of order in:\n{help}"));
        at += pos;
    }
    let examples = &help[at..];
    assert_eq!(examples.matches("\n  rgrad train").count(), 3, "{examples}");
}
