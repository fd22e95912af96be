/* classify: the smallest complete qforge application. It loads a flat model,
 * reads a JPEG, PNG, PPM or PGM image of any size, applies the model's
 * evaluation transform (resize the shorter side, crop the centre: torchvision's
 * Resize + CenterCrop, byte for byte), runs it and prints the five most likely
 * classes.
 *
 *   classify model.qfm image.jpg [threads]
 *
 * It links the qforge runtime (runtime/qforge.h) and the optional image library
 * beside it (runtime/image/qforge_image.h): this is how an edge application
 * ships them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/image/qforge_image.h"
#include "runtime/qforge.h"

static int fail(const char* what) {
  fprintf(stderr, "classify: %s: %s\n", what, qforge_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: classify model.qfm image.jpg|png|ppm|pgm [threads]\n");
    return 2;
  }
  qforge_model* model = NULL;
  if (qforge_model_load_file(argv[1], &model) != QFORGE_OK) return fail("loading the model");
  qforge_interpreter* it = NULL;
  const int threads = argc > 3 ? atoi(argv[3]) : 1;
  if (qforge_interpreter_create(model, QFORGE_BACKEND_FAST, threads, &it) != QFORGE_OK) {
    return fail("creating the interpreter");
  }
  qforge_tensor_info in, out;
  qforge_interpreter_input_info(it, 0, &in);
  qforge_interpreter_output_info(it, 0, &out);
  if (in.rank != 4 || in.shape[1] != in.shape[2] || (in.shape[3] != 1 && in.shape[3] != 3)) {
    fprintf(stderr, "classify: the model's input is not a square gray or RGB image\n");
    return 1;
  }
  const int size = (int)in.shape[1], channels = (int)in.shape[3];
  const int resize = qforge_model_eval_resize(model) > 0 ? qforge_model_eval_resize(model) : size;
  qforge_image image = {0}, input = {0};
  if (qforge_image_read(argv[2], channels, &image) != QFORGE_OK ||
      qforge_image_resize_center_crop(&image, resize, size, &input) != QFORGE_OK) {
    fprintf(stderr, "classify: %s\n", qforge_image_last_error());
    return 1;
  }
  const size_t count = (size_t)size * size * channels;
  if (qforge_interpreter_set_input_pixels(it, 0, input.pixels, count) != QFORGE_OK) {
    return fail("setting the input");
  }
  qforge_image_free(&input);
  qforge_image_free(&image);
  if (qforge_interpreter_invoke(it) != QFORGE_OK) return fail("running the model");
  const int classes = (int)out.shape[out.rank - 1];
  float* scores = malloc(sizeof(float) * classes);
  if (scores == NULL) return 1;
  if (qforge_interpreter_get_output_float(it, 0, scores, classes) != QFORGE_OK) {
    return fail("reading the output");
  }
  /* Softmax, then the five best by selection. */
  float max = scores[0], sum = 0;
  for (int c = 1; c < classes; ++c) max = scores[c] > max ? scores[c] : max;
  for (int c = 0; c < classes; ++c) sum += scores[c] = expf(scores[c] - max);
  for (int rank = 0; rank < 5 && rank < classes; ++rank) {
    int best = 0;
    for (int c = 1; c < classes; ++c) best = scores[c] > scores[best] ? c : best;
    const char* name = qforge_model_class_name(model, best);
    printf("%d. %s (%.2f%%)\n", rank + 1, name != NULL ? name : "?", 100.0f * scores[best] / sum);
    scores[best] = -1.0f;
  }
  free(scores);
  qforge_interpreter_destroy(it);
  qforge_model_destroy(model);
  return 0;
}
