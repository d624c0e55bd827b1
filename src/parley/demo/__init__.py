"""The demo workspace `parley serve --demo` seeds."""
