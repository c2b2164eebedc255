pytest_plugins = ["mb.testing"]
