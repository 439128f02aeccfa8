//! House rules of the workspace, checked by plain `cargo test` in the style of
//! rust-analyzer's `xtask/src/tidy.rs`: no extra tool, no CI-only script.
//!
//! 1. `crate_layering`: workspace crates depend downwards only,
//!    novita-catalog ← novita-policy ← novita-core ← {novita-ureq, novita-reqwest} ← novita-cli
//!    (read from `cargo metadata`).
//! 2. `banned_dependencies`: the pure crates stay pure, the adapters stay apart (read from
//!    `cargo tree`, per package, so each package's own default features count).
//! 3. `module_docs`: every module file opens with a `//!` doc comment.
//! 4. `no_module_cycles`: the modules of one crate do not import each other in a circle.
//! 5. `builder_parity`: both adapters' `ClientBuilder`s offer the same options.
//!
//! Each rule is a pure check function over parsed input, one `#[test]` that feeds it this
//! workspace, and unit tests (at the end) that feed it crafted input and watch it fail, so
//! a rule that can no longer fail is noticed. A failure names the rule, where it is broken
//! and how to fix it. `cargo metadata` runs once per test binary (a `OnceLock`); the
//! `cargo tree` calls run in parallel threads.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::{fs, thread};

use serde::Deserialize;

// ---------------------------------------------------------------------------------------------
// Shared: cargo, the workspace, reporting.

/// What `cargo metadata --no-deps` says about the workspace (only the fields the rules read).
#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    dependencies: Vec<Dependency>,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    /// `None` for a normal dependency, else `"dev"` or `"build"`.
    kind: Option<String>,
    optional: bool,
    /// Set for path (workspace) dependencies.
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
    src_path: PathBuf,
}

/// The workspace's packages, from one `cargo metadata` call shared by every rule.
///
/// `--no-deps` is enough: the declared dependencies drive rule 1, and rule 2 asks
/// `cargo tree` for each package's own resolution, which `resolve` in the full metadata
/// (features unified across the whole workspace) cannot give.
fn metadata() -> &'static Metadata {
    static METADATA: OnceLock<Metadata> = OnceLock::new();
    METADATA.get_or_init(|| {
        let json = run(cargo().args(["metadata", "--format-version", "1", "--no-deps"]));
        serde_json::from_str(&json).expect("cargo metadata prints its documented JSON")
    })
}

fn package(name: &str) -> &'static Package {
    metadata()
        .packages
        .iter()
        .find(|package| package.name == name)
        .unwrap_or_else(|| panic!("tidy: {name} is not a workspace member"))
}

/// The cargo running the tests (`CARGO`), else the one on `PATH`, in the workspace root.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(crate::workspace_root());
    command
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("tidy: cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "tidy: {command:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

/// `path` relative to the workspace root, for messages.
fn shown(path: &Path) -> String {
    let root = crate::workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Fails the calling test with every problem, under the rule's name.
fn fail_if_any(rule: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "tidy rule `{rule}` is broken ({} problem(s)):\n\n{}\n",
        problems.len(),
        problems
            .iter()
            .map(|problem| format!("  - {problem}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 1: crate layering.

/// The layers, bottom first. A crate may have normal and build dependencies only on crates
/// in lower layers; two crates of one layer (the adapters) may not depend on each other.
/// Dev-dependencies are free (they are not part of what a user compiles).
const LAYERS: &[&[&str]] = &[
    &["novita-catalog"],
    &["novita-policy"],
    &["novita-core"],
    // The adapters, and the Redis store beside them (both build on novita-core's traits).
    &["novita-ureq", "novita-reqwest", "novita-redis"],
    &["novita-cli"],
];
/// Test tooling outside the layers: it depends on no workspace crate (of any kind, so that
/// every crate can dev-depend on it without a cycle) and is a dev-dependency anywhere.
const MOCK: &str = "novita-mock";
/// The crates that may also have `novita-mock` as a normal dependency (`novita demo`).
const MOCK_USERS: &[&str] = &["novita-cli"];
/// Crates that may depend on anything: the integration tests, the benchmark against other
/// clients (its peers are its dependencies alone) and this automation.
const UNCONSTRAINED: &[&str] = &["novita-tests", "novita-peers", "xtask"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepKind {
    Normal,
    Build,
    Dev,
}

impl DepKind {
    fn section(self) -> &'static str {
        match self {
            DepKind::Normal => "[dependencies]",
            DepKind::Build => "[build-dependencies]",
            DepKind::Dev => "[dev-dependencies]",
        }
    }
}

/// One workspace manifest: its package, where it is, and what it declares.
struct Manifest {
    name: String,
    path: String,
    deps: Vec<(String, DepKind)>,
}

fn layer(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

fn layer_order() -> String {
    LAYERS
        .iter()
        .map(|layer| match layer {
            [single] => (*single).to_owned(),
            several => format!("{{{}}}", several.join(", ")),
        })
        .collect::<Vec<_>>()
        .join(" ← ")
}

/// Every workspace dependency that breaks the layering (dependencies on packages outside
/// the workspace are ignored).
fn layering_problems(manifests: &[Manifest]) -> Vec<String> {
    let members: BTreeSet<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    let order = layer_order();
    let mut problems = Vec::new();
    for manifest in manifests {
        let from = manifest.name.as_str();
        if UNCONSTRAINED.contains(&from) {
            continue;
        }
        if from != MOCK && layer(from).is_none() {
            problems.push(format!(
                "{from} ({}) is a workspace crate the layering does not know. Fix: add it to \
                 `LAYERS` (or `UNCONSTRAINED`) in xtask/src/tidy.rs",
                manifest.path
            ));
            continue;
        }
        for (to, kind) in &manifest.deps {
            let (to, kind) = (to.as_str(), *kind);
            if to == from || !members.contains(to) {
                continue;
            }
            let at = format!("{from} → {to} in {} {}", manifest.path, kind.section());
            let problem = if from == MOCK {
                format!(
                    "{at}: novita-mock must not depend on any workspace crate, so that every \
                     crate can dev-depend on it without a cycle. Fix: remove the dependency \
                     (move what it needs into novita-mock)"
                )
            } else if to == MOCK {
                if kind == DepKind::Dev || (kind == DepKind::Normal && MOCK_USERS.contains(&from)) {
                    continue;
                }
                format!(
                    "{at}: novita-mock is test tooling, a dev-dependency only (a normal \
                     dependency only of {}). Fix: move it to [dev-dependencies]",
                    MOCK_USERS.join(", ")
                )
            } else if kind == DepKind::Dev {
                continue;
            } else {
                match (layer(from), layer(to)) {
                    (Some(f), Some(t)) if t < f => continue,
                    (Some(f), Some(t)) if t == f => format!(
                        "{at}: crates of one layer must not depend on each other (the adapters \
                         stand side by side on novita-core). Fix: move the shared code down \
                         into novita-core"
                    ),
                    (Some(_), Some(_)) => format!(
                        "{at}: the dependency points up; the order is {order}. Fix: move what \
                         {from} needs from {to} down into {from} or a crate below it, or invert \
                         the dependency"
                    ),
                    _ => format!(
                        "{at}: {to} is a workspace crate the layering does not know. Fix: add \
                         it to `LAYERS` in xtask/src/tidy.rs"
                    ),
                }
            };
            problems.push(problem);
        }
    }
    problems
}

fn workspace_manifests() -> Vec<Manifest> {
    metadata()
        .packages
        .iter()
        .map(|package| Manifest {
            name: package.name.clone(),
            path: shown(&package.manifest_path),
            deps: package
                .dependencies
                .iter()
                .filter(|dep| dep.path.is_some())
                .map(|dep| {
                    let kind = match dep.kind.as_deref() {
                        Some("dev") => DepKind::Dev,
                        Some("build") => DepKind::Build,
                        _ => DepKind::Normal,
                    };
                    (dep.name.clone(), kind)
                })
                .collect(),
        })
        .collect()
}

#[test]
fn crate_layering() {
    fail_if_any("crate layering", &layering_problems(&workspace_manifests()));
}

// ---------------------------------------------------------------------------------------------
// Rule 2: banned dependencies.

/// Packages a crate must not have among its normal dependencies, transitively, on its
/// default features and every target: `(crate, banned packages, why)`.
const BANNED: &[(&str, &[&str], &str)] = &[
    (
        "novita-policy",
        &[
            "tracing",
            "metrics",
            "reqwest",
            "ureq",
            "hyper",
            "tokio",
            "async-std",
        ],
        "it is pure decisions: no I/O, runtime or telemetry",
    ),
    (
        "novita-ureq",
        &["tokio", "hyper", "reqwest"],
        "the blocking adapter must not drag in an async stack",
    ),
    (
        "novita-reqwest",
        &["ureq"],
        "the async adapter must not drag in the blocking client",
    ),
];
/// The leaf crate: no normal dependencies but the serde family, declared optional.
const LEAF: &str = "novita-catalog";

/// One line of `cargo tree --prefix depth`: how deep, and which package.
type TreeLine = (usize, String);

/// `cargo tree` of `package`'s normal dependencies, resolved for `package` alone (so its own
/// default features, not the workspace's union), on every target.
fn normal_tree(package: &str) -> Vec<TreeLine> {
    parse_tree(&run(cargo().args([
        "tree",
        "--package",
        package,
        "--edges",
        "normal",
        "--target",
        "all",
        "--prefix",
        "depth",
        "--format",
        "{p}",
    ])))
}

/// Parses `cargo tree --prefix depth --format {p}`: `2serde v1.0.0 (proc-macro) (*)`.
fn parse_tree(output: &str) -> Vec<TreeLine> {
    output
        .lines()
        .filter_map(|line| {
            let name_at = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let depth = line[..name_at].parse().ok()?;
            let name = line[name_at..].split_whitespace().next()?;
            Some((depth, name.to_owned()))
        })
        .collect()
}

/// For each banned package in the tree, the first path from the root to it.
fn banned_paths(tree: &[TreeLine], banned: &[&str]) -> Vec<Vec<String>> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut paths = Vec::new();
    for (depth, name) in tree {
        stack.truncate(*depth);
        stack.push(name.clone());
        if *depth > 0 && banned.contains(&name.as_str()) && seen.insert(name.clone()) {
            paths.push(stack.clone());
        }
    }
    paths
}

fn tree_root_problem(package: &str, tree: &[TreeLine]) -> Option<String> {
    (tree.first() != Some(&(0, package.to_owned()))).then(|| {
        format!("`cargo tree -p {package}` did not print {package}'s tree; tidy cannot check it")
    })
}

fn banned_problems(package: &str, tree: &[TreeLine], banned: &[&str], why: &str) -> Vec<String> {
    if let Some(problem) = tree_root_problem(package, tree) {
        return vec![problem];
    }
    banned_paths(tree, banned)
        .into_iter()
        .map(|path| {
            let culprit = path.last().expect("a path ends at the banned package");
            format!(
                "{package} pulls in `{culprit}` through {} (normal dependencies, default \
                 features): {package} must not depend on {} because {why}. Fix: drop the \
                 dependency that brings it in, or put it behind a feature that is off by \
                 default; `cargo tree -p {package} -e normal -i {culprit}` shows every path",
                path.join(" → "),
                banned.join(", ")
            )
        })
        .collect()
}

fn is_serde_family(name: &str) -> bool {
    name == "serde" || name.starts_with("serde_") || name.starts_with("serde-")
}

/// The leaf's direct normal dependencies that are not serde-family crates it declares
/// optional (what those pull in is theirs to pull).
fn leaf_problems(tree: &[TreeLine], optional_serde: &[String]) -> Vec<String> {
    if let Some(problem) = tree_root_problem(LEAF, tree) {
        return vec![problem];
    }
    tree.iter()
        .filter(|(depth, name)| *depth == 1 && !optional_serde.contains(name))
        .map(|(_, name)| {
            format!(
                "{LEAF} depends on `{name}` ({LEAF} → {name}, normal dependencies, default \
                 features): the catalog is the workspace's leaf and has no normal dependencies \
                 but the serde family, declared `optional = true` behind its `serde` feature. \
                 Fix: remove the dependency from crates/catalog/Cargo.toml, or, for a serde \
                 crate, make it optional"
            )
        })
        .collect()
}

/// The serde-family crates the leaf declares as optional normal dependencies.
fn leaf_optional_serde() -> Vec<String> {
    package(LEAF)
        .dependencies
        .iter()
        .filter(|dep| dep.kind.is_none() && dep.optional && is_serde_family(&dep.name))
        .map(|dep| dep.name.clone())
        .collect()
}

#[test]
fn banned_dependencies() {
    let problems: Vec<String> = thread::scope(|scope| {
        let mut checks: Vec<_> = BANNED
            .iter()
            .map(|&(package, banned, why)| {
                scope.spawn(move || banned_problems(package, &normal_tree(package), banned, why))
            })
            .collect();
        checks.push(scope.spawn(|| leaf_problems(&normal_tree(LEAF), &leaf_optional_serde())));
        checks
            .into_iter()
            .flat_map(|check| {
                check
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    fail_if_any("banned dependencies", &problems);
}

// ---------------------------------------------------------------------------------------------
// Rule 3: module docs.

/// The marker of a generated file, spelled with an escape so that this file is not itself
/// taken for one.
const GENERATED: &str = "// \x40generated";

/// Whether the first non-empty line is a `//!` doc comment. A generated file may open with
/// the generated marker and the plain `//` lines around it, then its `//!` doc.
fn opens_with_module_doc(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    match lines.next() {
        Some(first) if first.starts_with("//!") => true,
        Some(first) if first.starts_with(GENERATED) => lines
            .find(|line| {
                !line.starts_with("//") || line.starts_with("//!") || line.starts_with("///")
            })
            .is_some_and(|line| line.starts_with("//!")),
        _ => false,
    }
}

fn module_doc_problem(file: &str, text: &str) -> Option<String> {
    if opens_with_module_doc(text) {
        return None;
    }
    let first = text.lines().map(str::trim).find(|line| !line.is_empty());
    let found = first.map_or("the file is empty".to_owned(), |line| {
        let mut shortened: String = line.chars().take(60).collect();
        if shortened.len() < line.len() {
            shortened.push('…');
        }
        format!("it opens with `{shortened}`")
    });
    Some(format!(
        "{file}: {found}, not a `//!` module doc. Fix: start the file with `//! <what this \
         module is for>`"
    ))
}

/// Every `.rs` file under the crates' `src`, `xtask/src` and `tests/it`, sorted.
fn module_files(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("xtask/src"), root.join("tests/it")];
    let crates = fs::read_dir(root.join("crates")).expect("the workspace has crates/");
    for entry in crates {
        dirs.push(entry.expect("crates/ is readable").path().join("src"));
    }
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("source folders are readable").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn module_docs() {
    let root = crate::workspace_root();
    let files = module_files(&root);
    assert!(
        files.iter().any(|file| file.ends_with("xtask/src/tidy.rs")),
        "tidy found no module files under {}",
        root.display()
    );
    let problems: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let text = fs::read_to_string(file).expect("module files are UTF-8");
            module_doc_problem(&shown(file), &text)
        })
        .collect();
    fail_if_any("module docs", &problems);
}

// ---------------------------------------------------------------------------------------------
// Rule 4: no module cycles.
//
// The module tree of a crate is read from its root file, following `mod x;` declarations
// (and `#[path]`); modules declared `#[cfg(test)]`, and every other `#[cfg(test)]` item, are
// left out, since a test module naturally uses its parent. Each module is a node, and an
// edge is a path in it that names another module: `use crate::a::..`, `use super::..`,
// `use self::..`, a relative `use child::..`, and `crate::`/`super::`/`self::` paths in
// code. A path to an item that a module re-exports (`pub use a::Thing;` in the root, then
// `crate::Thing`) leads to the module the item comes from. Glob imports are not followed.
//
// The rule is per level: a module's submodules count as part of it. An edge from `a::x` to
// `b::y` is an edge between the siblings `a` and `b`; an edge between a module and its own
// ancestor or descendant does not count (a parent using its children and children using
// their parent's items is how modules nest). The siblings under each parent must form no
// cycle, so `simulate::fleet → simulate::strategy → simulate::fleet` fails just as
// `codegen → ops → codegen` at the top does.

/// A token of Rust source, enough to see items, paths and nesting; comments are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// A string literal's text, escapes left as written.
    Str(String),
    Punct(char),
    /// `::`.
    PathSep,
    /// A char or number literal, or a lifetime.
    Other,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let is_ident_start = |c: char| c.is_alphabetic() || c == '_';
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    // The length of the raw-string opener at `i` (`r"`, `r#"`, ...), if there is one.
    let raw_opener = |i: usize| {
        if at(i) != 'r' {
            return None;
        }
        let hashes = (i + 1..).take_while(|&j| at(j) == '#').count();
        (at(i + 1 + hashes) == '"').then_some(hashes)
    };
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let tok = if c == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
            continue;
        } else if let Some((prefix, hashes)) =
            raw_opener(i).map(|hashes| (0, hashes)).or_else(|| {
                (c == 'b' || c == 'c')
                    .then(|| raw_opener(i + 1).map(|hashes| (1, hashes)))
                    .flatten()
            })
        {
            // A raw string: r"...", r#"..."#, br"...", cr#"..."#.
            i += prefix + hashes + 2;
            let mut text = String::new();
            while i < chars.len() && !(chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                line += usize::from(chars[i] == '\n');
                text.push(chars[i]);
                i += 1;
            }
            i += hashes + 1;
            Tok::Str(text)
        } else if c == '"' || ((c == 'b' || c == 'c') && at(i + 1) == '"') {
            i += if c == '"' { 1 } else { 2 };
            let mut text = String::new();
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    text.push(chars[i]);
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                text.push(at(i));
                i += 1;
            }
            i += 1;
            Tok::Str(text)
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            // A char literal ('a', '\n', b'x') or a lifetime ('a, '_).
            i += if c == '\'' { 1 } else { 2 };
            if at(i) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 1) == '\'' {
                i += 2;
            } else {
                while is_ident(at(i)) {
                    i += 1;
                }
            }
            Tok::Other
        } else if is_ident_start(c) {
            if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
                i += 2; // a raw identifier, r#type
            }
            let start = i;
            while is_ident(at(i)) {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit() {
            while is_ident(at(i)) {
                i += 1;
            }
            Tok::Other
        } else if c == ':' && at(i + 1) == ':' {
            i += 2;
            Tok::PathSep
        } else {
            i += 1;
            Tok::Punct(c)
        };
        tokens.push(Token {
            tok,
            line: start_line,
        });
    }
    tokens
}

fn tok(tokens: &[Token], i: usize) -> Option<&Tok> {
    tokens.get(i).map(|token| &token.tok)
}

fn is_punct(tokens: &[Token], i: usize, c: char) -> bool {
    tok(tokens, i) == Some(&Tok::Punct(c))
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tok(tokens, i) {
        Some(Tok::Ident(name)) => Some(name),
        _ => None,
    }
}

/// The index just past the bracket that closes the one at `open`.
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// What the outer attributes before an item say, as far as the rules care.
#[derive(Default)]
struct Attrs {
    cfg_test: bool,
    path: Option<String>,
}

/// Reads the attribute at `i` (a `#`) into `attrs`; returns the index past it. Inner
/// attributes (`#![...]`) are skipped.
fn read_attribute(tokens: &[Token], i: usize, attrs: &mut Attrs) -> usize {
    let inner = is_punct(tokens, i + 1, '!');
    let open = i + 1 + usize::from(inner);
    if !is_punct(tokens, open, '[') {
        return i + 1;
    }
    let end = matching(tokens, open);
    let content: Vec<&Tok> = tokens
        .get(open + 1..end.saturating_sub(1))
        .unwrap_or_default()
        .iter()
        .map(|token| &token.tok)
        .collect();
    if !inner {
        match content.as_slice() {
            [
                Tok::Ident(cfg),
                Tok::Punct('('),
                Tok::Ident(test),
                Tok::Punct(')'),
            ] if cfg == "cfg" && test == "test" => {
                attrs.cfg_test = true;
            }
            [Tok::Ident(path), Tok::Punct('='), Tok::Str(value)] if path == "path" => {
                attrs.path = Some(value.clone());
            }
            _ => {}
        }
    }
    end
}

/// The index past the item starting at `i`: past its `;` or its closing `}`, or at the `}`
/// that closes the block around it.
fn skip_item(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < tokens.len() {
        match tokens[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(close @ (')' | ']' | '}')) => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 && close == '}' {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The index past a visibility at `i` (`pub`, `pub(crate)`, `pub(in crate::a)`).
fn skip_visibility(tokens: &[Token], i: usize) -> usize {
    if is_punct(tokens, i + 1, '(') {
        matching(tokens, i + 1)
    } else {
        i + 1
    }
}

/// One leaf of a `use` tree: the full path, and the name it binds (none for a glob or `_`).
#[derive(Debug, PartialEq, Eq)]
struct UseLeaf {
    path: Vec<String>,
    binding: Option<String>,
}

/// Reads the use tree starting at `i` under `prefix`; returns the index past it.
fn read_use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<UseLeaf>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tok(tokens, i) {
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Ident(name)) => {
                if tok(tokens, i + 1) == Some(&Tok::PathSep) {
                    path.push(name.clone());
                    i += 2;
                    continue;
                }
                let mut binding = if name == "self" {
                    path.last().cloned()
                } else {
                    path.push(name.clone());
                    Some(name.clone())
                };
                i += 1;
                if ident(tokens, i) == Some("as") {
                    binding = ident(tokens, i + 1)
                        .filter(|alias| *alias != "_")
                        .map(str::to_owned);
                    i += 2;
                }
                out.push(UseLeaf { path, binding });
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push(UseLeaf {
                    path,
                    binding: None,
                });
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while i < tokens.len() && !is_punct(tokens, i, '}') {
                    i = read_use_tree(tokens, i, &path, out);
                    if is_punct(tokens, i, ',') {
                        i += 1;
                    } else if !is_punct(tokens, i, '}') {
                        return i; // malformed; let the caller resynchronise
                    }
                }
                return i + 1;
            }
            _ => return i,
        }
    }
}

type ModPath = Vec<String>;

/// A path one module names, where.
#[derive(Debug)]
struct Reference {
    path: Vec<String>,
    in_use: bool,
    line: usize,
}

#[derive(Debug)]
struct Module {
    file: PathBuf,
    /// Where the files of its `mod x;` children are: `<dir>/x.rs` or `<dir>/x/mod.rs`.
    child_dir: PathBuf,
    children: BTreeSet<String>,
    /// Names its module-level `use` items bind, and the paths they bind them to.
    bindings: BTreeMap<String, Vec<String>>,
    references: Vec<Reference>,
}

/// The non-test modules of one crate, and what could not be read.
struct ModuleTree {
    modules: BTreeMap<ModPath, Module>,
    problems: Vec<String>,
}

/// A `mod x;` still to read: its path, the files it may be in, and its children's folder.
struct Pending {
    path: ModPath,
    candidates: Vec<PathBuf>,
    child_dir: PathBuf,
    declared_at: String,
}

/// Reads the module tree of the crate rooted at `root_file`, with `read` giving a file's text.
fn load_modules(root_file: &Path, read: &dyn Fn(&Path) -> Option<String>) -> ModuleTree {
    let mut tree = ModuleTree {
        modules: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut pending = vec![Pending {
        path: Vec::new(),
        candidates: vec![root_file.to_path_buf()],
        child_dir: root_file.parent().unwrap_or(Path::new("")).to_path_buf(),
        declared_at: "the crate root".to_owned(),
    }];
    while let Some(next) = pending.pop() {
        let found = next
            .candidates
            .iter()
            .find_map(|file| read(file).map(|text| (file, text)));
        let Some((file, text)) = found else {
            let tried: Vec<String> = next.candidates.iter().map(|file| shown(file)).collect();
            tree.problems.push(format!(
                "cannot find the file of module `{}` declared at {} (tried {}); tidy cannot \
                 check its imports",
                display_module(&next.path),
                next.declared_at,
                tried.join(", ")
            ));
            continue;
        };
        read_module_file(
            &text,
            file,
            next.path,
            next.child_dir,
            &mut tree,
            &mut pending,
        );
    }
    tree
}

fn new_module(file: &Path, child_dir: PathBuf) -> Module {
    Module {
        file: file.to_path_buf(),
        child_dir,
        children: BTreeSet::new(),
        bindings: BTreeMap::new(),
        references: Vec::new(),
    }
}

/// Reads one file holding module `top` (and any inline modules in it) into `tree`, queueing
/// its `mod x;` children.
fn read_module_file(
    text: &str,
    file: &Path,
    top: ModPath,
    child_dir: PathBuf,
    tree: &mut ModuleTree,
    pending: &mut Vec<Pending>,
) {
    let tokens = lex(text);
    tree.modules
        .insert(top.clone(), new_module(file, child_dir));
    // The modules open at this point in the file, innermost last, and for each open `{`
    // whether it opened an inline module.
    let mut open_modules = vec![top];
    let mut braces: Vec<bool> = Vec::new();
    let mut attrs = Attrs::default();
    let mut i = 0;
    while i < tokens.len() {
        let current = open_modules
            .last()
            .expect("the file's module stays open")
            .clone();
        let at_module_level = braces.last().is_none_or(|&is_module| is_module);
        match &tokens[i].tok {
            Tok::Punct('#') => {
                i = read_attribute(&tokens, i, &mut attrs);
                continue;
            }
            Tok::Ident(word) if word == "pub" => {
                i = skip_visibility(&tokens, i);
                continue;
            }
            _ if attrs.cfg_test => i = skip_item(&tokens, i),
            Tok::Ident(word) if word == "mod" && ident(&tokens, i + 1).is_some() => {
                let name = ident(&tokens, i + 1).expect("checked").to_owned();
                let mut path = current.clone();
                path.push(name.clone());
                let parent = &tree.modules[&current];
                let inline = braces.contains(&true);
                if is_punct(&tokens, i + 2, ';') {
                    let (candidates, child_dir) = match attrs.path.take() {
                        Some(relative) => {
                            let base = if inline {
                                parent.child_dir.clone()
                            } else {
                                file.parent().unwrap_or(Path::new("")).to_path_buf()
                            };
                            let file = base.join(relative);
                            let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
                            (vec![file], dir)
                        }
                        None => {
                            let dir = parent.child_dir.join(&name);
                            (
                                vec![
                                    parent.child_dir.join(format!("{name}.rs")),
                                    dir.join("mod.rs"),
                                ],
                                dir,
                            )
                        }
                    };
                    pending.push(Pending {
                        path: path.clone(),
                        candidates,
                        child_dir,
                        declared_at: format!("{}:{}", shown(file), tokens[i].line),
                    });
                    i += 3;
                } else if is_punct(&tokens, i + 2, '{') {
                    let child_dir = parent.child_dir.join(&name);
                    tree.modules
                        .insert(path.clone(), new_module(file, child_dir));
                    open_modules.push(path.clone());
                    braces.push(true);
                    i += 3;
                } else {
                    i += 1;
                    attrs = Attrs::default();
                    continue;
                }
                tree.modules
                    .get_mut(&current)
                    .expect("the parent is read")
                    .children
                    .insert(name);
            }
            Tok::Ident(word) if word == "use" && !is_punct(&tokens, i + 1, '<') => {
                let line = tokens[i].line;
                let mut leaves = Vec::new();
                i = read_use_tree(&tokens, i + 1, &[], &mut leaves);
                i = skip_item(&tokens, i);
                let module = tree.modules.get_mut(&current).expect("the module is read");
                for leaf in leaves {
                    if let (true, Some(binding)) = (at_module_level, &leaf.binding) {
                        module.bindings.insert(binding.clone(), leaf.path.clone());
                    }
                    module.references.push(Reference {
                        path: leaf.path,
                        in_use: true,
                        line,
                    });
                }
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && tok(&tokens, i + 1) == Some(&Tok::PathSep)
                    && !(i > 0 && is_punct(&tokens, i - 1, '$')) =>
            {
                let line = tokens[i].line;
                let mut path = Vec::new();
                while let Some(name) = ident(&tokens, i) {
                    path.push(name.to_owned());
                    i += 1;
                    if tok(&tokens, i) != Some(&Tok::PathSep) {
                        break;
                    }
                    i += 1;
                }
                let module = tree.modules.get_mut(&current).expect("the module is read");
                module.references.push(Reference {
                    path,
                    in_use: false,
                    line,
                });
            }
            Tok::Punct('{') => {
                braces.push(false);
                i += 1;
            }
            Tok::Punct('}') => {
                if braces.pop() == Some(true) {
                    open_modules.pop();
                }
                i += 1;
            }
            _ => i += 1,
        }
        attrs = Attrs::default();
    }
}

fn display_module(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_owned()
    } else {
        path.join("::")
    }
}

/// The path `path`, written in module `from`, as a path from the crate root; `None` for a
/// path outside the crate.
fn absolute(
    tree: &ModuleTree,
    from: &[String],
    path: &[String],
    in_use: bool,
) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base = from.to_vec();
    let rest = match first.as_str() {
        "crate" => {
            base.clear();
            rest
        }
        "self" => rest,
        "super" => {
            let mut rest = path;
            while rest.first().is_some_and(|segment| segment == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            rest
        }
        name if in_use && tree.modules.get(from)?.children.contains(name) => path,
        _ => return None,
    };
    base.extend_from_slice(rest);
    Some(base)
}

/// The module an absolute path leads into: the deepest module it names, following
/// re-exports (`pub use a::Thing;`) to the module the item comes from.
fn target_module(tree: &ModuleTree, path: &[String], hops: usize) -> ModPath {
    let mut module = Vec::new();
    for (k, segment) in path.iter().enumerate() {
        let Some(current) = tree.modules.get(&module) else {
            break;
        };
        if current.children.contains(segment) {
            module.push(segment.clone());
            continue;
        }
        if let Some(bound) = current.bindings.get(segment).filter(|_| hops < 8)
            && let Some(mut through) = absolute(tree, &module, bound, true)
        {
            through.extend_from_slice(&path[k + 1..]);
            return target_module(tree, &through, hops + 1);
        }
        break;
    }
    module
}

/// Why an edge between two sibling modules exists: the first reference found.
#[derive(Clone, Debug)]
struct Evidence {
    from: ModPath,
    file: PathBuf,
    line: usize,
    text: String,
}

/// The edges between sibling modules: a reference from `a::x` into `b::y` is an edge
/// `a → b`; references between a module and its ancestors or descendants are not edges.
fn sibling_edges(tree: &ModuleTree) -> BTreeMap<(ModPath, ModPath), Evidence> {
    let mut edges = BTreeMap::new();
    for (from, module) in &tree.modules {
        for reference in &module.references {
            let Some(path) = absolute(tree, from, &reference.path, reference.in_use) else {
                continue;
            };
            let to = target_module(tree, &path, 0);
            let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if shared == from.len() || shared == to.len() {
                continue; // the same module, an ancestor or a descendant
            }
            let text = format!(
                "{}{}",
                if reference.in_use { "use " } else { "" },
                reference.path.join("::")
            );
            edges
                .entry((from[..=shared].to_vec(), to[..=shared].to_vec()))
                .or_insert(Evidence {
                    from: from.clone(),
                    file: module.file.clone(),
                    line: reference.line,
                    text,
                });
        }
    }
    edges
}

/// Every tangle of modules that import each other, with one cycle through it spelled out.
fn module_cycles(label: &str, tree: &ModuleTree) -> Vec<String> {
    let edges = sibling_edges(tree);
    let mut successors: BTreeMap<&ModPath, BTreeSet<&ModPath>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        successors.entry(from).or_default().insert(to);
    }
    let reachable = |start: &ModPath| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &next in successors.get(node).into_iter().flatten() {
                if seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&ModPath, BTreeSet<&ModPath>> = successors
        .keys()
        .map(|&node| (node, reachable(node)))
        .collect();
    let mut reported = BTreeSet::new();
    let mut problems = Vec::new();
    for (&node, reached) in &reach {
        if !reached.contains(node) || reported.contains(node) {
            continue;
        }
        // The tangle: every module on some cycle through `node` (the smallest in it, since
        // the nodes are visited in order).
        let tangle: BTreeSet<&ModPath> = reached
            .iter()
            .copied()
            .filter(|other| reach.get(other).is_some_and(|back| back.contains(node)))
            .collect();
        reported.extend(tangle.iter().copied());
        // The shortest cycle through `node`, by breadth-first search inside the tangle.
        let mut parent: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
        let mut queue = VecDeque::from([node]);
        'search: while let Some(current) = queue.pop_front() {
            for &next in &successors[current] {
                if !tangle.contains(next) || parent.contains_key(next) {
                    continue;
                }
                parent.insert(next, current);
                if next == node {
                    break 'search;
                }
                queue.push_back(next);
            }
        }
        let mut cycle = vec![node];
        let mut current = parent[node];
        while current != node {
            cycle.push(current);
            current = parent[current];
        }
        cycle.push(node);
        cycle.reverse();
        let names: Vec<String> = cycle.iter().map(|module| display_module(module)).collect();
        let mut problem = format!("{label}: modules import each other: {}", names.join(" → "));
        if tangle.len() + 1 > cycle.len() {
            let all: Vec<String> = tangle.iter().map(|module| display_module(module)).collect();
            problem += &format!(" (all of {} are entangled)", all.join(", "));
        }
        for pair in cycle.windows(2) {
            let evidence = &edges[&(pair[0].clone(), pair[1].clone())];
            problem += &format!(
                "\n      {} → {}: {}:{} in {}: `{}`",
                display_module(pair[0]),
                display_module(pair[1]),
                shown(&evidence.file),
                evidence.line,
                display_module(&evidence.from),
                evidence.text
            );
        }
        problem += "\n    Fix: move what both sides need into the module it belongs to (or a new \
                    module both use), so the imports point one way";
        problems.push(problem);
    }
    problems
}

/// The crates whose modules are checked: every library and binary, and the workspace's
/// integration tests (`tests/it`).
fn checked_targets() -> Vec<(String, &'static Path)> {
    let mut targets = Vec::new();
    for package in &metadata().packages {
        for target in &package.targets {
            let code = target.kind.iter().any(|kind| {
                matches!(
                    kind.as_str(),
                    "lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro" | "bin"
                )
            });
            if code || package.name == "novita-tests" {
                let label = format!(
                    "{} ({} `{}`)",
                    package.name,
                    target.kind.join(", "),
                    target.name
                );
                targets.push((label, target.src_path.as_path()));
            }
        }
    }
    targets
}

#[test]
fn no_module_cycles() {
    let mut problems = Vec::new();
    for (label, root_file) in checked_targets() {
        let tree = load_modules(root_file, &|path| fs::read_to_string(path).ok());
        problems.extend(
            tree.problems
                .iter()
                .map(|problem| format!("{label}: {problem}")),
        );
        problems.extend(module_cycles(&label, &tree));
    }
    fail_if_any("no module cycles", &problems);
}

// ---------------------------------------------------------------------------------------------
// Rule 5: builder parity.

/// The adapters, and the folders their `impl ClientBuilder` blocks are in.
const ADAPTERS: &[(&str, &str)] = &[
    ("novita-ureq", "crates/blocking/src"),
    ("novita-reqwest", "crates/async/src"),
];
/// Builder methods that only one adapter has, on purpose: `(adapter, method, why)`; add an
/// entry only with the reason the other adapter cannot have the option.
const ADAPTER_SPECIFIC_SETTERS: &[(&str, &str, &str)] = &[
    (
        "novita-ureq",
        "agent",
        "the user's own HTTP client, which for this adapter is a ureq::Agent",
    ),
    (
        "novita-reqwest",
        "http_client",
        "the user's own HTTP client, which for this adapter is a reqwest::Client",
    ),
];

/// The `pub fn`s of every inherent `impl ClientBuilder` block in `source`, with their lines.
/// `#[cfg(test)]` items are left out; feature-gated ones count.
fn builder_methods(source: &str) -> Vec<(String, usize)> {
    let tokens = lex(source);
    let mut methods = Vec::new();
    let mut attrs = Attrs::default();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Punct('#') => {
                i = read_attribute(&tokens, i, &mut attrs);
                continue;
            }
            _ if attrs.cfg_test => i = skip_item(&tokens, i),
            Tok::Ident(word) if word == "impl" && starts_item(&tokens, i) => {
                let open = (i..tokens.len())
                    .find(|&j| is_punct(&tokens, j, '{') || is_punct(&tokens, j, ';'))
                    .unwrap_or(tokens.len());
                let end = matching(&tokens, open);
                if is_builder_impl(&tokens[i + 1..open]) {
                    methods.extend(public_fns(&tokens[open + 1..end.saturating_sub(1)]));
                }
                i = end;
            }
            Tok::Punct('{') => i = matching(&tokens, i), // not an item at file level
            _ => i += 1,
        }
        attrs = Attrs::default();
    }
    methods
}

/// Whether the token at `i` can start an item (rather than be `impl Trait` in a type).
fn starts_item(tokens: &[Token], i: usize) -> bool {
    i == 0
        || matches!(tok(tokens, i - 1), Some(Tok::Punct('}' | ';' | ']')))
        || matches!(ident(tokens, i - 1), Some("unsafe" | "default"))
}

/// Whether an impl header (between `impl` and `{`) is the inherent impl of `ClientBuilder`.
fn is_builder_impl(header: &[Token]) -> bool {
    let mut angle = 0usize;
    let mut self_type = None;
    for token in header {
        match &token.tok {
            Tok::Punct('<') => angle += 1,
            Tok::Punct('>') => angle = angle.saturating_sub(1),
            Tok::Ident(word) if word == "for" => return false,
            Tok::Ident(word) if word == "where" => break,
            Tok::Ident(word) if angle == 0 => self_type = Some(word.as_str()),
            _ => {}
        }
    }
    self_type == Some("ClientBuilder")
}

/// The `pub fn`s directly in an impl body.
fn public_fns(body: &[Token]) -> Vec<(String, usize)> {
    let mut fns = Vec::new();
    let mut attrs = Attrs::default();
    let mut i = 0;
    while i < body.len() {
        match &body[i].tok {
            Tok::Punct('#') => {
                i = read_attribute(body, i, &mut attrs);
                continue;
            }
            _ if attrs.cfg_test => i = skip_item(body, i),
            Tok::Ident(word) if word == "pub" && is_punct(body, i + 1, '(') => {
                i = skip_item(body, i); // restricted visibility: not part of the API
            }
            Tok::Ident(word) if word == "pub" => {
                let mut j = i + 1;
                while matches!(
                    ident(body, j),
                    Some("const" | "async" | "unsafe" | "extern")
                ) || matches!(tok(body, j), Some(Tok::Str(_)))
                {
                    j += 1;
                }
                if let (Some("fn"), Some(name)) = (ident(body, j), ident(body, j + 1)) {
                    fns.push((name.to_owned(), body[j + 1].line));
                }
                i = skip_item(body, i);
            }
            Tok::Punct('{') => i = matching(body, i),
            _ => i += 1,
        }
        attrs = Attrs::default();
    }
    fns
}

/// One adapter's builder options, each with where it is defined.
type Options = BTreeMap<String, String>;

/// Options one adapter has and another lacks (unless allowlisted), allowlist entries that no
/// longer match, and adapters where no builder was found.
fn builder_problems(adapters: &[(&str, Options)], allowlist: &[(&str, &str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (adapter, options) in adapters {
        if options.is_empty() {
            problems.push(format!(
                "{adapter}: no `pub fn` in an `impl ClientBuilder` block; tidy cannot compare \
                 the builders. Fix: point `ADAPTERS` in xtask/src/tidy.rs at the folder the \
                 builder lives in"
            ));
        }
    }
    for (adapter, options) in adapters {
        for (option, location) in options {
            let allowed = allowlist
                .iter()
                .any(|(a, method, _)| a == adapter && method == option);
            let lacking: Vec<&str> = adapters
                .iter()
                .filter(|(_, others)| !others.is_empty() && !others.contains_key(option))
                .map(|(other, _)| *other)
                .collect();
            if !lacking.is_empty() && !allowed {
                problems.push(format!(
                    "{adapter}'s `ClientBuilder::{option}` ({location}) is missing from {}'s \
                     builder; the adapters keep one option set. Fix: add `{option}` to {} \
                     (or, if it cannot exist there, list it in `ADAPTER_SPECIFIC_SETTERS` in \
                     xtask/src/tidy.rs with the reason)",
                    lacking.join(", "),
                    lacking.join(", ")
                ));
            }
        }
    }
    for (adapter, method, _) in allowlist {
        let has = |options: &Options| options.contains_key(*method);
        let own = adapters
            .iter()
            .find(|(name, _)| name == adapter)
            .is_some_and(|(_, options)| has(options));
        if !own || adapters.iter().all(|(_, options)| has(options)) {
            problems.push(format!(
                "`ADAPTER_SPECIFIC_SETTERS` in xtask/src/tidy.rs lists {adapter}'s \
                 `ClientBuilder::{method}`, but {}. Fix: remove the entry",
                if own {
                    "every adapter has it now"
                } else {
                    "that builder has no such method"
                }
            ));
        }
    }
    problems
}

#[test]
fn builder_parity() {
    let root = crate::workspace_root();
    let adapters: Vec<(&str, Options)> = ADAPTERS
        .iter()
        .map(|&(adapter, dir)| {
            let mut files = Vec::new();
            let mut dirs = vec![root.join(dir)];
            while let Some(dir) = dirs.pop() {
                for entry in fs::read_dir(&dir).expect("the adapter's sources are readable") {
                    let path = entry.expect("the adapter's sources are readable").path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_some_and(|ext| ext == "rs") {
                        files.push(path);
                    }
                }
            }
            let mut options = Options::new();
            for file in files {
                let text = fs::read_to_string(&file).expect("sources are UTF-8");
                for (method, line) in builder_methods(&text) {
                    options.insert(method, format!("{}:{line}", shown(&file)));
                }
            }
            (adapter, options)
        })
        .collect();
    fail_if_any(
        "builder parity",
        &builder_problems(&adapters, ADAPTER_SPECIFIC_SETTERS),
    );
}

// ---------------------------------------------------------------------------------------------
// The checkers, on crafted input: every rule can fail.

mod checkers {
    use super::*;

    fn manifest(name: &str, deps: &[(&str, DepKind)]) -> Manifest {
        Manifest {
            name: name.to_owned(),
            path: format!("{name}/Cargo.toml"),
            deps: deps
                .iter()
                .map(|&(dep, kind)| (dep.to_owned(), kind))
                .collect(),
        }
    }

    /// The real shape of the workspace, plus `extra` dependencies of `crate_`.
    fn workspace_with(crate_: &str, extra: &[(&str, DepKind)]) -> Vec<Manifest> {
        use DepKind::{Dev, Normal};
        let mut shape: Vec<(&str, Vec<(&str, DepKind)>)> = vec![
            ("novita-catalog", vec![("serde", Normal)]),
            ("novita-policy", vec![("novita-catalog", Normal)]),
            ("novita-core", vec![("novita-policy", Normal)]),
            ("novita-ureq", vec![("novita-core", Normal), (MOCK, Dev)]),
            ("novita-reqwest", vec![("novita-core", Normal), (MOCK, Dev)]),
            (
                "novita-cli",
                vec![
                    ("novita-catalog", Normal),
                    ("novita-ureq", Normal),
                    ("novita-reqwest", Normal),
                    (MOCK, Normal),
                    (MOCK, Dev),
                ],
            ),
            (MOCK, vec![("tokio", Normal)]),
            ("novita-tests", vec![("novita-ureq", Dev), (MOCK, Dev)]),
            ("xtask", vec![("novita-core", Normal)]),
        ];
        for (name, deps) in &mut shape {
            if *name == crate_ {
                deps.extend_from_slice(extra);
            }
        }
        shape
            .iter()
            .map(|(name, deps)| manifest(name, deps))
            .collect()
    }

    #[test]
    fn layering_accepts_the_intended_shape() {
        assert_eq!(
            layering_problems(&workspace_with("", &[])),
            Vec::<String>::new()
        );
        // A dev-dependency may point up.
        let dev_up = workspace_with("novita-catalog", &[("novita-cli", DepKind::Dev)]);
        assert!(layering_problems(&dev_up).is_empty());
    }

    #[test]
    fn layering_rejects_an_upward_dependency() {
        for kind in [DepKind::Normal, DepKind::Build] {
            let problems =
                layering_problems(&workspace_with("novita-policy", &[("novita-core", kind)]));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with(&format!(
                "novita-policy → novita-core in novita-policy/Cargo.toml {}: the dependency \
                 points up",
                kind.section()
            )));
            assert!(problems[0].contains("Fix:"));
        }
    }

    #[test]
    fn layering_rejects_adapters_depending_on_each_other() {
        let problems = layering_problems(&workspace_with(
            "novita-reqwest",
            &[("novita-ureq", DepKind::Normal)],
        ));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("novita-reqwest → novita-ureq"));
        assert!(problems[0].contains("must not depend on each other"));
    }

    #[test]
    fn layering_keeps_the_mock_apart() {
        let normal_in_core =
            layering_problems(&workspace_with("novita-core", &[(MOCK, DepKind::Normal)]));
        assert_eq!(normal_in_core.len(), 1, "{normal_in_core:?}");
        assert!(normal_in_core[0].contains("novita-core → novita-mock"));
        assert!(normal_in_core[0].contains("move it to [dev-dependencies]"));

        let mock_uses_core =
            layering_problems(&workspace_with(MOCK, &[("novita-catalog", DepKind::Dev)]));
        assert_eq!(mock_uses_core.len(), 1, "{mock_uses_core:?}");
        assert!(mock_uses_core[0].contains("novita-mock must not depend on any workspace crate"));
    }

    #[test]
    fn layering_rejects_unknown_crates() {
        let mut manifests = workspace_with("novita-core", &[("novita-extra", DepKind::Normal)]);
        manifests.push(manifest("novita-extra", &[]));
        let problems = layering_problems(&manifests);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|problem| problem.contains("does not know"))
        );
    }

    const POLICY_TREE: &str = "\
0novita-policy v0.1.0 (/w/crates/policy)
1humantime-serde v1.1.1
2serde v1.0.229
1novita-catalog v0.1.0 (/w/crates/catalog)
1tiny-io v0.1.0
2tokio v1.54.1
3tracing v0.1.44
1tracing v0.1.44 (*)
";

    #[test]
    fn tree_output_is_parsed() {
        let tree = parse_tree("0a v1 (/x)\n1serde_derive v1.0.0 (proc-macro) (*)\n\n");
        assert_eq!(
            tree,
            vec![(0, "a".to_owned()), (1, "serde_derive".to_owned())]
        );
    }

    #[test]
    fn banned_dependencies_are_named_with_their_path() {
        let tree = parse_tree(POLICY_TREE);
        let problems = banned_problems("novita-policy", &tree, &["tokio", "tracing"], "pure");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "novita-policy pulls in `tokio` through novita-policy → tiny-io → tokio"
            )
        );
        assert!(problems[1].starts_with(
            "novita-policy pulls in `tracing` through novita-policy → tiny-io → tokio → tracing"
        ));
        assert!(banned_problems("novita-policy", &tree, &["ureq"], "pure").is_empty());
        // A tree that is not the package's own is an error, not a pass.
        assert_eq!(
            banned_problems("novita-ureq", &tree, &["tokio"], "x").len(),
            1
        );
    }

    #[test]
    fn the_leaf_takes_only_optional_serde() {
        let with_serde = parse_tree(
            "0novita-catalog v0.1.0 (/w)\n1serde v1.0.229\n2serde_core v1\n2serde_derive v1 (proc-macro)\n3syn v2\n",
        );
        let optional = vec!["serde".to_owned()];
        assert!(leaf_problems(&with_serde, &optional).is_empty());
        // The same serde, declared as a plain dependency.
        let problems = leaf_problems(&with_serde, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("novita-catalog depends on `serde` (novita-catalog → serde")
        );
        let other = parse_tree("0novita-catalog v0.1.0 (/w)\n1itoa v1.0.0\n");
        assert_eq!(leaf_problems(&other, &optional).len(), 1);
        assert!(is_serde_family("serde_json") && !is_serde_family("serdex"));
    }

    #[test]
    fn module_docs_are_required() {
        assert!(opens_with_module_doc("\n//! Doc.\nuse x;"));
        assert!(opens_with_module_doc(
            "// \x40generated by codegen. Do not edit.\n// Run codegen.\n\n//! Doc.\n"
        ));
        for bad in [
            "",
            "use std::fmt;\n//! Late.",
            "/// Item doc.\nfn f() {}",
            "// A plain comment.\n//! Doc.",
            "// \x40generated\n\nuse x;\n//! Late.",
            "// \x40generated\n/// Item doc.\n",
        ] {
            assert!(!opens_with_module_doc(bad), "{bad:?}");
        }
        let problem = module_doc_problem("src/a.rs", "use std::fmt;\n").expect("no doc");
        assert_eq!(
            problem,
            "src/a.rs: it opens with `use std::fmt;`, not a `//!` module doc. Fix: start the \
             file with `//! <what this module is for>`"
        );
        assert!(
            module_doc_problem("src/b.rs", "")
                .unwrap()
                .contains("the file is empty")
        );
    }

    fn crafted_crate(files: &[(&str, &str)]) -> ModuleTree {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect();
        load_modules(Path::new("src/lib.rs"), &|path| files.get(path).cloned())
    }

    fn cycles(files: &[(&str, &str)]) -> Vec<String> {
        let tree = crafted_crate(files);
        assert_eq!(tree.problems, Vec::<String>::new());
        module_cycles("demo", &tree)
    }

    #[test]
    fn lexer_drops_comments_and_literals() {
        let tokens = lex("a /* b /* c */ d */ \"crate::x\" r#\"e\"# 'f' 'g: b'h' // i\n::j");
        let toks: Vec<&Tok> = tokens.iter().map(|token| &token.tok).collect();
        assert_eq!(
            toks,
            [
                &Tok::Ident("a".into()),
                &Tok::Str("crate::x".into()),
                &Tok::Str("e".into()),
                &Tok::Other,
                &Tok::Other,
                &Tok::Punct(':'),
                &Tok::Other,
                &Tok::PathSep,
                &Tok::Ident("j".into()),
            ]
        );
        assert_eq!(tokens.last().unwrap().line, 2);
    }

    #[test]
    fn use_trees_are_read() {
        let tokens = lex("crate::a::{self, b::C as D, e::*, F as _};");
        let mut leaves = Vec::new();
        read_use_tree(&tokens, 0, &[], &mut leaves);
        let path = |text: &str| text.split("::").map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            leaves,
            [
                UseLeaf {
                    path: path("crate::a"),
                    binding: Some("a".into())
                },
                UseLeaf {
                    path: path("crate::a::b::C"),
                    binding: Some("D".into())
                },
                UseLeaf {
                    path: path("crate::a::e"),
                    binding: None
                },
                UseLeaf {
                    path: path("crate::a::F"),
                    binding: None
                },
            ]
        );
    }

    #[test]
    fn a_direct_cycle_is_named() {
        let problems = cycles(&[
            ("src/lib.rs", "//! Root.\nmod a;\nmod b;\n"),
            ("src/a.rs", "//! A.\nuse crate::b::Thing;\n"),
            ("src/b.rs", "//! B.\npub fn f() { crate::a::g(); }\n"),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("demo: modules import each other: a → b → a"));
        assert!(problems[0].contains("a → b: src/a.rs:2 in a: `use crate::b::Thing`"));
        assert!(problems[0].contains("b → a: src/b.rs:2 in b: `crate::a::g`"));
        assert!(problems[0].contains("Fix:"));
    }

    #[test]
    fn a_cycle_through_a_re_export_is_named() {
        let problems = cycles(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c;\npub use b::Thing;\n"),
            ("src/a.rs", "use crate::Thing;\n"),
            ("src/b.rs", "use crate::c::{self};\n"),
            ("src/c.rs", "fn f() { let _ = super::a::helper(); }\n"),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("demo: modules import each other: a → b → c → a"));
    }

    #[test]
    fn a_cycle_between_nested_siblings_is_named() {
        let problems = cycles(&[
            ("src/lib.rs", "mod sim;\n"),
            (
                "src/sim/mod.rs",
                "mod fleet;\nmod strategy;\npub(crate) use strategy::Strategy;\nstruct Error;\n",
            ),
            (
                "src/sim/fleet.rs",
                "use super::strategy::{Client, Gate};\nuse super::Error;\n",
            ),
            ("src/sim/strategy.rs", "use super::fleet::{self, Tally};\n"),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(
            "demo: modules import each other: sim::fleet → sim::strategy → sim::fleet"
        ));
    }

    #[test]
    fn nesting_tests_and_text_are_not_cycles() {
        let problems = cycles(&[
            (
                "src/lib.rs",
                "mod a;\nmod b;\npub struct Root;\nfn f() { a::g(); }\n#[cfg(test)]\nmod tests;\n",
            ),
            (
                "src/a.rs",
                "use crate::Root;\nuse crate::b::Thing;\nmod inner { use super::super::Root; }\n\
                 #[cfg(test)]\nmod tests {\n    use crate::a::Thing;\n}\n",
            ),
            (
                "src/b.rs",
                "// crate::a::g is not called here\nconst S: &str = \"use crate::a::g;\";\n\
                 #[cfg(test)]\nfn helper() { crate::a::g(); }\n\
                 macro_rules! m { () => { $crate::a::g() } }\n",
            ),
        ]);
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn inline_modules_and_path_attributes_are_followed() {
        let problems = cycles(&[
            (
                "src/lib.rs",
                "mod outer {\n    pub mod x { use super::y::Y; }\n    pub mod y { use crate::outer::x::X; }\n}\n#[path = \"other/z.rs\"]\nmod z;\n",
            ),
            ("src/other/z.rs", "use crate::outer::x::X;\n"),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("outer::x → outer::y → outer::x"));
        let missing = crafted_crate(&[("src/lib.rs", "mod gone;\n")]);
        assert_eq!(missing.problems.len(), 1);
        assert!(missing.problems[0].contains("cannot find the file of module `gone`"));
    }

    const BLOCKING: &str = r#"
        //! Blocking.
        pub struct ClientBuilder;
        impl ClientBuilder {
            /// The key.
            pub fn api_key(mut self, key: impl Into<String>) -> Self { self }
            #[cfg(feature = "toml")]
            pub fn policy_toml(self) -> Self { self }
            pub(crate) fn internal(self) {}
            fn private(self) {}
            #[cfg(test)]
            pub fn for_tests(self) {}
            pub const fn build(self) -> Client { Client }
        }
        impl Default for ClientBuilder { pub fn default() -> Self { Self } }
        fn builder(f: impl Fn()) -> ClientBuilder { ClientBuilder }
    "#;

    fn options(adapter_methods: &[(&str, usize)]) -> Options {
        adapter_methods
            .iter()
            .map(|&(method, line)| (method.to_owned(), format!("lib.rs:{line}")))
            .collect()
    }

    #[test]
    fn builder_methods_are_the_public_fns_of_inherent_impls() {
        let methods = builder_methods(BLOCKING);
        let names: Vec<&str> = methods.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["api_key", "policy_toml", "build"]);
        assert_eq!(methods[0].1, 6);
    }

    #[test]
    fn builders_must_match() {
        let blocking = options(&[("api_key", 6), ("seed", 9), ("build", 12)]);
        let asynchronous = options(&[("api_key", 7), ("build", 13), ("http2", 20)]);
        let adapters = [
            ("novita-ureq", blocking.clone()),
            ("novita-reqwest", asynchronous.clone()),
        ];
        let problems = builder_problems(&adapters, &[]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with(
            "novita-ureq's `ClientBuilder::seed` (lib.rs:9) is missing from novita-reqwest's builder"
        ));
        assert!(problems[1].starts_with(
            "novita-reqwest's `ClientBuilder::http2` (lib.rs:20) is missing from novita-ureq's builder"
        ));

        let allowlist = [
            ("novita-ureq", "seed", "why"),
            ("novita-reqwest", "http2", "why"),
        ];
        assert!(builder_problems(&adapters, &allowlist).is_empty());

        let stale = [
            ("novita-ureq", "api_key", "why"),
            ("novita-ureq", "gone", "why"),
        ];
        let problems = builder_problems(&adapters[..1], &stale);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("every adapter has it now"));
        assert!(problems[1].contains("that builder has no such method"));

        let empty = [
            ("novita-ureq", blocking),
            ("novita-reqwest", Options::new()),
        ];
        let problems = builder_problems(&empty, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("novita-reqwest: no `pub fn` in an `impl ClientBuilder`"));
    }
}
