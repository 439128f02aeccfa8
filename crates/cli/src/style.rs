//! How the CLI's output looks: tables that fit the terminal, and colour only where it
//! helps (a terminal, and never with `NO_COLOR`, <https://no-color.org>).

use std::io::IsTerminal as _;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

/// The width of a table written to a pipe or file: wide enough for the demo's columns,
/// narrow enough to read; `COLUMNS` overrides it.
const PIPE_WIDTH: u16 = 120;

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset or empty.
pub(crate) fn colour_stdout() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// A table with these headers that wraps its cells to the terminal's width (or, off a
/// terminal, to `COLUMNS` or 120 columns), styled only when stdout gets colour.
pub(crate) fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    if std::io::stdout().is_terminal() {
        // comfy-table reads the terminal's width itself.
        if !colour_stdout() {
            table.force_no_tty();
            table.set_width(terminal_width().unwrap_or(PIPE_WIDTH));
        }
    } else {
        table.force_no_tty();
        table.set_width(terminal_width().unwrap_or(PIPE_WIDTH));
    }
    table
}

/// `COLUMNS`, when set to a usable width.
fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&width| width >= 40)
}

/// A cell saying something went as it should, green when coloured.
pub(crate) fn good(text: &str, colour: bool) -> Cell {
    let cell = Cell::new(text);
    if colour { cell.fg(Color::Green) } else { cell }
}

/// A cell saying something went wrong, red when coloured.
pub(crate) fn bad(text: &str, colour: bool) -> Cell {
    let cell = Cell::new(text);
    if colour { cell.fg(Color::Red) } else { cell }
}
