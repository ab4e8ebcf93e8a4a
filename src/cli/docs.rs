//! `rvm-watchdog completions SHELL` and `rvm-watchdog manpage`: shell
//! completions and man pages generated from the command line's own
//! definition, so they cannot drift from it (the package installs them).

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

use super::Cli;

/// `completions SHELL`
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `manpage [--dir DIR]`
#[derive(Debug, Clone, clap::Args)]
pub struct ManpageArgs {
    /// Write rvm-watchdog.1 and one page a subcommand
    /// (rvm-watchdog-status.1, …) here instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionArgs, out: &mut impl Write) {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "rvm-watchdog", out);
}

/// Prints the main man page, or writes every page into `args.dir`.
/// Returns the files written.
pub fn manpage(args: &ManpageArgs, out: &mut impl Write) -> std::io::Result<Vec<PathBuf>> {
    let command = Cli::command();
    let Some(dir) = &args.dir else {
        clap_mangen::Man::new(command).render(out)?;
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let main = dir.join("rvm-watchdog.1");
    let mut file = std::fs::File::create(&main)?;
    clap_mangen::Man::new(command.clone()).render(&mut file)?;
    written.push(main);
    for sub in command.get_subcommands() {
        let name = format!("rvm-watchdog-{}", sub.get_name());
        let path = dir.join(format!("{name}.1"));
        // As git's pages: NAME is the page's own name (what `whatis` and
        // lintian read), SYNOPSIS the command as typed.
        let page = sub
            .clone()
            .name(name)
            .bin_name(format!("rvm-watchdog {}", sub.get_name()));
        let mut file = std::fs::File::create(&path)?;
        clap_mangen::Man::new(page).render(&mut file)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_every_subcommand() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        assert!(names.iter().any(|n| n == "status"), "{names:?}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(&CompletionArgs { shell }, &mut out);
            let text = String::from_utf8(out).unwrap();
            for name in &names {
                assert!(text.contains(name.as_str()), "{shell}: no {name}");
            }
        }
    }

    #[test]
    fn man_pages_cover_every_subcommand_and_its_options() {
        let dir = tempfile::tempdir().unwrap();
        let written = manpage(
            &ManpageArgs {
                dir: Some(dir.path().to_owned()),
            },
            &mut Vec::new(),
        )
        .unwrap();
        let count = Cli::command().get_subcommands().count();
        assert_eq!(written.len(), count + 1);
        let main = std::fs::read_to_string(dir.path().join("rvm-watchdog.1")).unwrap();
        assert!(
            main.starts_with(".ie") || main.contains(".TH rvm-watchdog"),
            "{main}"
        );
        let status = std::fs::read_to_string(dir.path().join("rvm-watchdog-status.1")).unwrap();
        assert!(status.contains("\\-\\-json"), "{status}");
        // NAME is the page's name (whatis, lintian); SYNOPSIS the command.
        let name = status.split(".SH NAME\n").nth(1).unwrap();
        assert!(name.starts_with("rvm\\-watchdog\\-status \\- "), "{name}");
        let synopsis = status.split(".SH SYNOPSIS\n").nth(1).unwrap();
        assert!(
            synopsis.starts_with("\\fBrvm\\-watchdog status\\fR"),
            "{synopsis}"
        );
        let events = std::fs::read_to_string(dir.path().join("rvm-watchdog-events.1")).unwrap();
        assert!(events.contains("\\-\\-follow"), "{events}");
    }
}
