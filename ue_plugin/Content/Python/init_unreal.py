"""Run by the editor at start-up: adds worldforge's entry to the Tools menu.

worldforge itself (the ``datagen`` package) must be installed into the editor's Python once
(docs/unreal.md); until it is, this says how instead of failing the editor's start-up.
"""

try:
    from worldforge_ue import menu
except ImportError as exc:
    print(f"worldforge recorder: not available ({exc}). Install worldforge into the editor's "
          "Python: <Engine>/Binaries/ThirdParty/Python3/<platform>/bin/python3 -m pip install "
          "/path/to/worldforge (docs/unreal.md)")
else:
    menu.register()
