"""The Unreal Engine recorder's host side (issue 10, in progress): what runs outside the editor.

``convert`` maps Unreal poses (left-handed, centimetres, double precision) to the episode
contract's frame; ``remote`` is our client of the editor's Python remote execution protocol,
and ``commands`` the ``datagen unreal find`` / ``exec`` commands on top of it. The backend
itself (``datagen record --backend unreal``) is not registered yet: it needs the rest of the
editor plugin (``ue_plugin/``) and the headless driver. See docs/unreal.md.
"""
