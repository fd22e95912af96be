/* qforge's optional image library, C API: reading a JPEG, PNG, PPM or PGM
 * file and the evaluation transform of torchvision's ImageNet recipe (resize
 * the shorter side, then crop the centre), byte for byte as Pillow and
 * torchvision compute them. It sits beside the runtime (runtime/qforge.h),
 * which reads no image formats itself; link it only if the application needs
 * it (it brings libjpeg and libpng).
 *
 *   qforge_image image, input;
 *   if (qforge_image_read("photo.jpg", 3, &image) != QFORGE_OK) {
 *     fprintf(stderr, "%s\n", qforge_image_last_error());
 *   }
 *   qforge_image_resize_center_crop(&image, 256, 224, &input);
 *   qforge_interpreter_set_input_pixels(it, 0, input.pixels, 224 * 224 * 3);
 *   qforge_image_free(&input);
 *   qforge_image_free(&image);
 */
#ifndef QFORGE_RUNTIME_IMAGE_QFORGE_IMAGE_H_
#define QFORGE_RUNTIME_IMAGE_QFORGE_IMAGE_H_

#include "runtime/qforge.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int width;
  int height;
  int channels;          /* 1 (gray) or 3 (RGB) */
  unsigned char* pixels; /* [height][width][channels]; owned, qforge_image_free */
} qforge_image;

/* The last failing call's message on this thread. */
const char* qforge_image_last_error(void);

/* Decodes the file; channels 3: RGB, 1: gray, 0: the file's own. */
qforge_status qforge_image_read(const char* path, int channels, qforge_image* image);

/* Resizes the shorter side to `resize` (Pillow's bilinear filter; skipped if it
 * already is) and crops `size` x `size` from the centre. resize >= size. */
qforge_status qforge_image_resize_center_crop(const qforge_image* image, int resize, int size,
                                              qforge_image* out);

/* Frees the pixels and zeroes the struct; a zeroed struct is fine too. */
void qforge_image_free(qforge_image* image);

#ifdef __cplusplus
}
#endif

#endif /* QFORGE_RUNTIME_IMAGE_QFORGE_IMAGE_H_ */
