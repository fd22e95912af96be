/* The qforge runtime's C API: what an edge application links to run a flat
 * qforge model (.qfm) on the CPU.
 *
 *   qforge_model* model;
 *   if (qforge_model_load_file("model.qfm", &model) != QFORGE_OK) {
 *     fprintf(stderr, "%s\n", qforge_last_error());
 *   }
 *   qforge_interpreter* it;
 *   qforge_interpreter_create(model, QFORGE_BACKEND_FAST, 2, &it);
 *   qforge_interpreter_set_input_pixels(it, 0, rgb, width * height * 3);
 *   qforge_interpreter_invoke(it);
 *   qforge_interpreter_get_output_float(it, 0, scores, num_classes);
 *   qforge_interpreter_destroy(it);
 *   qforge_model_destroy(model);
 *
 * Every function that can fail returns a qforge_status; on failure,
 * qforge_last_error() describes it (per thread, valid until the next failing
 * call on that thread). A model is immutable once loaded and may be shared by
 * several interpreters; an interpreter is used by one thread at a time.
 */
#ifndef QFORGE_RUNTIME_QFORGE_H_
#define QFORGE_RUNTIME_QFORGE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  QFORGE_OK = 0,
  QFORGE_INVALID_ARGUMENT = 1, /* a bad model file, index, size or parameter */
  QFORGE_NOT_FOUND = 2,        /* a missing file */
  QFORGE_UNSUPPORTED = 3,      /* valid, but this build or CPU cannot run it */
  QFORGE_OUT_OF_MEMORY = 4,
  QFORGE_INTERNAL = 5,
  QFORGE_OVER_LIMIT = 6,       /* valid, but over a qforge_load_limits the caller set */
} qforge_status;

typedef enum {
  QFORGE_FLOAT32 = 1,
  QFORGE_INT8 = 2,
  QFORGE_INT32 = 3, /* biases only: a model whose inputs or outputs are INT32 is refused */
} qforge_type;

typedef enum {
  /* qforge's own int8 kernels, bit-exact with the reference, where the CPU
   * has AVX2 or better (QFORGE_ISA=generic in the environment turns them
   * off); XNNPACK for float ops, and for every op on other CPUs */
  QFORGE_BACKEND_FAST = 0,
  QFORGE_BACKEND_REFERENCE = 1,    /* portable reference kernels */
  QFORGE_BACKEND_XNNPACK_ONLY = 2, /* XNNPACK for every op (int8 within 1 LSB) */
} qforge_backend;

/* The fast backend's earlier name. */
#define QFORGE_BACKEND_XNNPACK QFORGE_BACKEND_FAST

#define QFORGE_MAX_RANK 6

typedef struct {
  const char* name; /* owned by the model */
  int rank;
  int64_t shape[QFORGE_MAX_RANK];
  qforge_type type;
  float scale;        /* per-tensor quantization; 0 for float tensors */
  int32_t zero_point; /* 0 for float tensors */
} qforge_tensor_info;

typedef struct qforge_model qforge_model;
typedef struct qforge_interpreter qforge_interpreter;

const char* qforge_last_error(void);

/* What an application accepts from a model file it did not make: a small file
 * can still describe a huge arena or hours of arithmetic. A model over any
 * limit is refused with QFORGE_OVER_LIMIT before its weights are copied or
 * any arena is allocated. qforge_default_load_limits() gives 1 GiB of arena
 * per interpreter, 1 GiB of weights and biases, and 100 Gi (1.07e11)
 * multiply-adds per invoke; MobileNetV2 at 224x224 needs 3 MB, 3.5 MB and
 * 0.3 G. Start from those: a zeroed struct refuses every model. */
typedef struct {
  int64_t max_arena_bytes;
  int64_t max_constant_bytes;
  int64_t max_multiply_adds;
} qforge_load_limits;

qforge_load_limits qforge_default_load_limits(void);

/* Loading validates everything before any memory is allocated for it, within
 * the default limits, or `limits` (not null) for the _with_limits forms. */
qforge_status qforge_model_load_file(const char* path, qforge_model** model);
qforge_status qforge_model_load_buffer(const void* data, size_t size, qforge_model** model);
qforge_status qforge_model_load_file_with_limits(const char* path,
                                                 const qforge_load_limits* limits,
                                                 qforge_model** model);
qforge_status qforge_model_load_buffer_with_limits(const void* data, size_t size,
                                                   const qforge_load_limits* limits,
                                                   qforge_model** model);
void qforge_model_destroy(qforge_model* model);

/* Class names from the model's metadata (0 if it has none). */
int qforge_model_num_classes(const qforge_model* model);
const char* qforge_model_class_name(const qforge_model* model, int index);

/* The model's preprocessing: x[c] = (pixel * pixel_scale - mean[c]) / std[c].
 * Writes up to max_channels means and stds; *channels receives the count. */
qforge_status qforge_model_preprocessing(const qforge_model* model, float* pixel_scale,
                                         float* mean, float* std, int max_channels,
                                         int* channels);
/* The evaluation transform's resize for images of other sizes than the
 * input's: the shorter side becomes this, then the centre is cropped to the
 * input's size (runtime/image/qforge_image.h does both). 0: the input's size. */
int qforge_model_eval_resize(const qforge_model* model);

qforge_status qforge_interpreter_create(const qforge_model* model, qforge_backend backend,
                                        int num_threads, qforge_interpreter** interpreter);
void qforge_interpreter_destroy(qforge_interpreter* interpreter);

int qforge_interpreter_num_inputs(const qforge_interpreter* interpreter);
int qforge_interpreter_num_outputs(const qforge_interpreter* interpreter);
qforge_status qforge_interpreter_input_info(const qforge_interpreter* interpreter, int index,
                                            qforge_tensor_info* info);
qforge_status qforge_interpreter_output_info(const qforge_interpreter* interpreter, int index,
                                             qforge_tensor_info* info);

/* Inputs must be set before every invoke. `count` is the element count of the
 * input, which must match exactly. A float input given to an int8 tensor is
 * quantized. */
qforge_status qforge_interpreter_set_input_float(qforge_interpreter* interpreter, int index,
                                                 const float* data, size_t count);
/* Raw interleaved pixels (NHWC, the model's channel order), preprocessed as
 * the model says, then quantized if the input is int8. */
qforge_status qforge_interpreter_set_input_pixels(qforge_interpreter* interpreter, int index,
                                                  const uint8_t* pixels, size_t count);

qforge_status qforge_interpreter_invoke(qforge_interpreter* interpreter);

/* Outputs as float (dequantized if int8), or as raw int8 (int8 outputs only). */
qforge_status qforge_interpreter_get_output_float(const qforge_interpreter* interpreter,
                                                  int index, float* data, size_t count);
qforge_status qforge_interpreter_get_output_int8(const qforge_interpreter* interpreter,
                                                 int index, int8_t* data, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* QFORGE_RUNTIME_QFORGE_H_ */
