//! What a `--model` argument names: a local directory or a Hugging Face model id.
//!
//! An existing directory always wins, so a folder called `gpt2` in the working
//! directory shadows the hub's `gpt2`. Anything else must be a valid hub id,
//! `name` or `owner/name`, optionally followed by `@revision` (a branch, tag or
//! commit; default `main`).

use std::path::{Path, PathBuf};

use crate::{HubError, Result};

/// GPT-2 family ids that the hub moved under an organisation, with their new names.
/// Either spelling finds a model cached under the other.
pub const HUB_ALIASES: &[(&str, &str)] = &[
    ("gpt2", "openai-community/gpt2"),
    ("gpt2-medium", "openai-community/gpt2-medium"),
    ("gpt2-large", "openai-community/gpt2-large"),
    ("gpt2-xl", "openai-community/gpt2-xl"),
    ("distilgpt2", "distilbert/distilgpt2"),
];

/// The longest repository name the hub accepts.
const MAX_NAME_LEN: usize = 96;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A directory on disk.
    Local(PathBuf),
    /// A model on the Hugging Face Hub.
    Hub(HubId),
}

/// A hub model: `owner/name` (or a bare legacy `name`) at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    pub repo: String,
    pub revision: String,
}

impl ModelSpec {
    /// Reads `spec` relative to the working directory.
    pub fn parse(spec: &str) -> Result<ModelSpec> {
        ModelSpec::parse_in(spec, Path::new(""))
    }

    /// Reads `spec` with relative paths taken from `base`.
    pub fn parse_in(spec: &str, base: &Path) -> Result<ModelSpec> {
        let unknown = |reason: String| HubError::UnknownSpec {
            spec: spec.to_string(),
            reason,
        };
        if spec.is_empty() {
            return Err(unknown("the model argument is empty".into()));
        }
        let path = base.join(spec);
        if path.is_dir() {
            return Ok(ModelSpec::Local(path));
        }
        if path.exists() {
            return Err(unknown(format!(
                "{} is a file; pass the directory that holds config.json and the weights",
                path.display()
            )));
        }
        let looks_like_path = spec.starts_with(['.', '/', '~', '\\'])
            || spec.contains('\\')
            || spec.ends_with('/')
            || spec.matches('/').count() > 1
            || Path::new(spec).is_absolute();
        if looks_like_path {
            return Err(unknown(format!("{} does not exist", path.display())));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) if !rev.is_empty() => (repo, rev),
            Some(_) => return Err(unknown("empty revision after '@'".into())),
            None => (spec, "main"),
        };
        for part in repo.split('/') {
            check_name_part(part).map_err(|why| unknown(format!("{part:?} {why}")))?;
        }
        if revision.contains("..") || revision.starts_with('/') {
            return Err(unknown(format!(
                "revision {revision:?} is not a valid git reference"
            )));
        }
        Ok(ModelSpec::Hub(HubId {
            repo: repo.to_string(),
            revision: revision.to_string(),
        }))
    }
}

impl HubId {
    /// The repository names to look for in the cache: this one, then its alias.
    pub fn cache_candidates(&self) -> Vec<&str> {
        let mut names = vec![self.repo.as_str()];
        for &(old, new) in HUB_ALIASES {
            if self.repo == old {
                names.push(new);
            } else if self.repo == new {
                names.push(old);
            }
        }
        names
    }

    /// The id as `huggingface-cli download` takes it (with `--revision` when not main).
    pub fn download_command_arg(&self) -> String {
        if self.revision == "main" {
            self.repo.clone()
        } else {
            format!("{} --revision {}", self.repo, self.revision)
        }
    }
}

/// The hub's rules for one part of a repository id.
fn check_name_part(part: &str) -> std::result::Result<(), &'static str> {
    if part.is_empty() {
        return Err("is empty");
    }
    if part.len() > MAX_NAME_LEN {
        return Err("is longer than 96 characters");
    }
    if !part
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may only hold letters, digits, '-', '_' and '.'");
    }
    if part.contains("--") || part.contains("..") {
        return Err("may not contain '--' or '..'");
    }
    if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
        return Err("may not start or end with '-' or '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, revision: &str) -> ModelSpec {
        ModelSpec::Hub(HubId {
            repo: repo.into(),
            revision: revision.into(),
        })
    }

    #[test]
    fn hub_ids() {
        let base = Path::new("/nonexistent-base-dir");
        for id in [
            "gpt2",
            "gpt2-xl",
            "distilgpt2",
            "openai-community/gpt2",
            "a/b.c_d",
        ] {
            assert_eq!(ModelSpec::parse_in(id, base).unwrap(), hub(id, "main"));
        }
        assert_eq!(
            ModelSpec::parse_in("gpt2@v1.0", base).unwrap(),
            hub("gpt2", "v1.0")
        );
    }

    #[test]
    fn bad_specs_say_why() {
        let base = Path::new("/nonexistent-base-dir");
        for (spec, why) in [
            ("", "empty"),
            ("./my-model", "does not exist"),
            ("a/b/c", "does not exist"),
            ("a--b", "'--'"),
            ("-x", "start or end"),
            ("x y", "letters, digits"),
            ("gpt2@", "empty revision"),
        ] {
            let err = ModelSpec::parse_in(spec, base).unwrap_err().to_string();
            assert!(err.contains(why), "{spec:?}: {err}");
            assert!(err.contains(&format!("{spec:?}")), "{spec:?}: {err}");
        }
    }

    #[test]
    fn an_existing_directory_wins_over_a_hub_id() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("gpt2")).unwrap();
        assert_eq!(
            ModelSpec::parse_in("gpt2", tmp.path()).unwrap(),
            ModelSpec::Local(tmp.path().join("gpt2"))
        );
        assert_eq!(
            ModelSpec::parse_in("distilgpt2", tmp.path()).unwrap(),
            hub("distilgpt2", "main")
        );
    }

    #[test]
    fn aliases_go_both_ways() {
        let id = |r: &str| HubId {
            repo: r.into(),
            revision: "main".into(),
        };
        assert_eq!(
            id("gpt2").cache_candidates(),
            ["gpt2", "openai-community/gpt2"]
        );
        assert_eq!(
            id("distilbert/distilgpt2").cache_candidates(),
            ["distilbert/distilgpt2", "distilgpt2"]
        );
        assert_eq!(id("me/mine").cache_candidates(), ["me/mine"]);
    }
}
