"""Where the VGG19 weights of the perceptual loss come from, found without importing Keras.

In order: a path given by the caller (the tools' --vgg_weights), the
environment variable `CIN_STYLE_VGG19_WEIGHTS`, then Keras' download cache
(`~/.keras/models`, or `$KERAS_HOME/models`), where `keras.applications.VGG19`
keeps the file once it has downloaded it.
"""

import os

#: Environment variable naming a local VGG19 no-top weights file (.h5).
WEIGHTS_ENV = "CIN_STYLE_VGG19_WEIGHTS"
#: Keras' file name for the VGG19 ImageNet no-top weights (80 MB).
WEIGHTS_FILE_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_cache_path():
    """Where Keras keeps the downloaded VGG19 weights, if a copy is there; else `None`.

    Follows `keras.utils.get_file`: `$KERAS_HOME` or `~/.keras` (`/tmp/.keras`
    when the home folder is read-only), subfolder `models`.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    for folder in (home, os.path.join("/tmp", ".keras")) if not os.access(home, os.W_OK) else (home,):
        path = os.path.join(folder, "models", WEIGHTS_FILE_NAME)
        if os.path.isfile(path):
            return path
    return None
