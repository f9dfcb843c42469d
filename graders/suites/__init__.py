"""One module of checks per assignment; `graders.harness` imports them all on first use."""
