/* src/py/pymods.c - modules shipped with a function: `.qp.def`'s
 * `modules` option, a dict of module names to their source (the .py
 * files beside the function's module that it imports, which the client
 * and the scheduler send: qp_job_modules). They become importable on this
 * server before the function's code runs, through a finder that comes
 * before every other on sys.meta_path (as the script's own folder comes
 * first on its sys.path), each source compiled once per server (by its
 * SHA-256) and run as its module when first imported. A module shipped
 * again with other source is imported anew by the next import (functions
 * defined before keep the one they imported); a module this server had
 * already imported from elsewhere under that name (the standard library's,
 * say) stays what `import` gives. GIL held.
 */
#include "py_int.h"
#include "qpeach/ipc.h"

#include <stdlib.h>
#include <string.h>

static const char helper_src[] =
    "import linecache, sys\n"
    "class ShippedModules:\n"
    "    # Modules shipped with functions (.qp.def's modules option), found\n"
    "    # by import before any other finder; each source compiled once.\n"
    "    def __init__(self):\n"
    "        self.src, self.code = {}, {}\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if path is not None or name not in self.src:\n"
    "            return None\n"
    "        import importlib.util\n"
    "        return importlib.util.spec_from_loader(name, self, origin='<qpeach:%s.py>' % name)\n"
    "    def create_module(self, spec):\n"
    "        return None\n"
    "    def exec_module(self, m):\n"
    "        sha, src = self.src[m.__name__]\n"
    "        co = self.code.get(sha)\n"
    "        if co is None:\n"
    "            fn = '<qpeach:%s.py>' % m.__name__\n"
    "            linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)\n"
    "            co = self.code[sha] = compile(src, fn, 'exec')\n"
    "        m.__qpeach_sha__ = sha\n"
    "        exec(co, m.__dict__)\n"
    "    def add(self, mods):\n"
    "        import hashlib\n"
    "        if self not in sys.meta_path:\n"
    "            sys.meta_path.insert(0, self)\n"
    "        for name, src in mods.items():\n"
    "            sha = hashlib.sha256(src.encode('utf-8', 'surrogateescape')).hexdigest()\n"
    "            self.src[name] = (sha, src)\n"
    "            m = sys.modules.get(name)\n"
    "            if m is not None and getattr(m, '__qpeach_sha__', sha) != sha:\n"
    "                del sys.modules[name]\n"
    "shipped = ShippedModules()\n";

static PyObject *helpers;     /* dict: the finder above, once compiled */

static PyObject *finder(void)   /* borrowed; NULL with an exception */
{
    if (!helpers && !(helpers = qp__helpers_run(helper_src))) return NULL;
    return PyDict_GetItemString(helpers, "shipped");
}

int qp__modules_add(const qp_value *mods)
{
    if (!qp_is_dict(mods))
        return PyErr_Format(PyExc_TypeError, "the modules option must be a dict of module names "
                            "to their source"), -1;
    PyObject *d = qp_py_from_q(mods, 0);
    PyObject *sm = d ? finder() : NULL;
    PyObject *r = sm ? PyObject_CallMethod(sm, "add", "O", d) : NULL;
    Py_XDECREF(d);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

qp_value *qp__def_key(const qp_value *code, const qp_value *mods, qp_value *id)
{
    uint8_t *b = NULL;
    size_t len = 0;
    if (!mods || qp_ipc_encode(mods, QP_MSG_ASYNC, &b, &len) < 0) return qp_ref(id);
    uint8_t *all = malloc((size_t)code->v.n + len + 1);
    qp_value *k = NULL;
    if (all) {
        memcpy(all, code->v.data, (size_t)code->v.n);
        memcpy(all + code->v.n, b, len);
        k = qp__sha256_hex(all, (size_t)code->v.n + len);
    }
    free(all);
    free(b);
    if (k && !qp_is_error(k)) return k;
    qp_unref(k);
    return qp_ref(id);
}

void qp__modules_fini(void)
{
    Py_CLEAR(helpers);
}
