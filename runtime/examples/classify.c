/* classify: the smallest complete qforge application. It loads a flat model,
 * reads a binary PPM (P6, RGB) or PGM (P5, gray) image of exactly the model's
 * input size, runs it and prints the five most likely classes.
 *
 *   classify model.qfm image.ppm [threads]
 *
 * It links only the qforge runtime (runtime/qforge.h): this is how an edge
 * application ships it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/qforge.h"

/* Reads a P5/P6 image with maxval 255; returns the pixels (malloc'd) or NULL. */
static unsigned char* read_pnm(const char* path, int* width, int* height, int* channels) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char magic[3] = {0};
  int maxval = 0;
  unsigned char* pixels = NULL;
  if (fscanf(f, "%2s %d %d %d", magic, width, height, &maxval) == 4 && maxval == 255 &&
      (strcmp(magic, "P5") == 0 || strcmp(magic, "P6") == 0) && *width > 0 && *height > 0 &&
      *width <= 16384 && *height <= 16384) {
    *channels = magic[1] == '6' ? 3 : 1;
    fgetc(f); /* the single whitespace after maxval */
    const size_t size = (size_t)*width * *height * *channels;
    pixels = malloc(size);
    if (pixels != NULL && fread(pixels, 1, size, f) != size) {
      free(pixels);
      pixels = NULL;
    }
  }
  fclose(f);
  return pixels;
}

static int fail(const char* what) {
  fprintf(stderr, "classify: %s: %s\n", what, qforge_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: classify model.qfm image.ppm [threads]\n");
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
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = read_pnm(argv[2], &width, &height, &channels);
  if (pixels == NULL) {
    fprintf(stderr, "classify: %s is not a readable binary PGM/PPM with maxval 255\n", argv[2]);
    return 1;
  }
  if (in.rank != 4 || height != in.shape[1] || width != in.shape[2] || channels != in.shape[3]) {
    fprintf(stderr, "classify: the model wants %lldx%lldx%lld images, %s is %dx%dx%d\n",
            (long long)in.shape[1], (long long)in.shape[2], (long long)in.shape[3], argv[2], height,
            width, channels);
    return 1;
  }
  const size_t count = (size_t)width * height * channels;
  if (qforge_interpreter_set_input_pixels(it, 0, pixels, count) != QFORGE_OK) {
    return fail("setting the input");
  }
  free(pixels);
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
