"""Reports: results (JSON) -> Markdown with PNG plots beside it and a self-contained HTML page, one module
per study. Rendered when a command asks (the CLI, after a study), never on every results write."""
