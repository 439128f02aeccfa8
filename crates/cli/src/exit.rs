//! The exit codes of `novita`, one place so the help text and the code agree.

/// The command did what was asked.
pub(crate) const SUCCESS: u8 = 0;
/// The command line was wrong: a malformed or out-of-range argument (clap uses 2 too).
pub(crate) const USAGE: u8 = 2;

/// The exit-code table shown at the end of `novita --help`.
pub(crate) const HELP: &str = "\
Exit codes:
  0  success
  2  bad command line or argument (for example `explain abc`, `explain 99999`, `explain 200`)";

#[cfg(test)]
mod tests {
    #[test]
    fn help_lists_every_code() {
        for code in [super::SUCCESS, super::USAGE] {
            assert!(super::HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
