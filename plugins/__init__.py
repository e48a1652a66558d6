"""tcnet's built-in science plugins, installed as the package `tcnet_plugins` and registered
through the entry-point group `tcnet` like any third-party plugin."""
