"""The Unreal Engine recorder's host side (issue 10, in progress): what runs outside the editor.

``convert`` maps Unreal poses (left-handed, centimetres, double precision) to the episode
contract's frame. The backend itself (``datagen record --backend unreal``) is not registered
yet: it needs the editor plugin (``ue_plugin/``) and the headless driver.
"""
