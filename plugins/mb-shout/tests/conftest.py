"""Enable mb's shipped pytest fixture (`mb_workspace`) for this plugin's tests."""

pytest_plugins = ["mb.testing"]
