//! Workspace-level integration tests live in `it/`; this empty library only anchors the
//! package.
