"""The servable model as code (MLflow's models-from-code): the file MLflow runs to make it.

``packaging`` logs this file's path as ``python_model``, not a pickled ``ChestXrayModel``:
MLflow copies the file into the package and, on load, runs it after putting the
package's own copy of ``chest_xray`` (``code_paths``) on ``sys.path``. Nothing is
unpickled, so a package loads under any Python and cloudpickle version, and no pickled
object silently carries state of the process that saved it. The network and the settings
come from the package (``load_context``: ``artifacts/model.keras`` and ``model_config``).

Keep this file to the one ``set_model`` call: MLflow executes it on every save and load.
"""

from mlflow.models import set_model

from chest_xray.inference.pyfunc_model import ChestXrayModel

set_model(ChestXrayModel())
