"""The built-in engine's renderer: Panda3D offscreen (software p3tinydisplay or EGL OpenGL)."""

from datagen.builtin.render.panda import BACKENDS, Renderer, RendererError

__all__ = ["BACKENDS", "Renderer", "RendererError"]
