"""gridwatch shell: CLI, settings, database engine, migrations, local services and demo."""
