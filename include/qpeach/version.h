/* qpeach/version.h - the one place qpeach's version is written: `qpeach
 * --version`, `.qp.info[]`'s version, and the Python package's
 * `qpeach.__version__` (from the extension) and its metadata (setup.py
 * reads this line). */
#ifndef QPEACH_VERSION_H
#define QPEACH_VERSION_H

#define QPEACH_VERSION "0.1.0"

#endif
