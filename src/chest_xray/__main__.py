"""chest-xray file for ensuring the package is executable
as `chest-xray` and `python -m chest_xray`
"""

import sys
from pathlib import Path
from typing import Any


def main(*args, **kwargs) -> Any:
    """``chest-xray predict ...`` and ``chest-xray serve ...`` (no Kedro needed), else the
    project's ``kedro run``."""
    if not args and sys.argv[1:2] == ["predict"]:
        from chest_xray.inference.cli import main as predict

        sys.exit(predict(sys.argv[2:]))
    if not args and sys.argv[1:2] == ["serve"]:
        from chest_xray.inference.serving import main as serve

        sys.exit(serve(sys.argv[2:]))

    from kedro.framework.cli.utils import find_run_command
    from kedro.framework.project import configure_project

    package_name = Path(__file__).parent.name
    configure_project(package_name)

    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive

    run = find_run_command(package_name)
    return run(*args, **kwargs)


if __name__ == "__main__":
    main()
