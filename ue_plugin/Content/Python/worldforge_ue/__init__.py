"""The worldforge recorder inside the Unreal editor (Python Editor Script Plugin).

Only :mod:`worldforge_ue.adapter` imports ``unreal``; it wraps the few editor calls the recorder
needs (the editor world, the level's NavMesh bounds, Unreal's own path finding and point
projection) and hands the rest of the recorder contract-frame numbers, through
:mod:`datagen.unreal.convert`. The recorder's logic comes from the ``datagen`` package installed
into the editor's Python (docs/unreal.md). In progress (issue 10): the NavMesh navigator is
here; the pawn driven through Enhanced Input, the camera log and the frame capture are next.
"""
