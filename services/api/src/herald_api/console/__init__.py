"""The operator console at ``/console``: plain HTML, CSS and ES modules served by the api itself."""
