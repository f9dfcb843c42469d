"""The instructor and self-learner commands: build, demo, selfcheck."""
