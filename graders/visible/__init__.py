"""The visible checks of each assignment: the student's side.

They ask for expected values only through `t.ref` and `t.data`, about inputs they make themselves from
literals and seeded generators, so that they run from the check data a release carries.
"""
