"""ONNX Runtime sessions, built one way for every check and measurement."""

__all__ = ['ort_session']


def ort_session(onnx_file, threads=None, profile_prefix=None, optimized_file=None):
    """An ONNX Runtime CPU session: ``threads`` intra-op threads (None: ONNX Runtime's
    default), one inter-op thread, sequential execution, all graph optimisations, idle
    threads not spinning (each model has its own session and thread pool; with 2 threads,
    spinning pools of the other models doubled the latencies). ``profile_prefix`` turns on
    ONNX Runtime's profiler; ``optimized_file`` saves the optimised graph."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_file:
        options.optimized_model_filepath = optimized_file
    return ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
