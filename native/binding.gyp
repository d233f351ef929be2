{
  "targets": [
    {
      "target_name": "omni_native",
      "sources": ["src/addon.cc", "src/pcm.cc", "src/g711.cc", "src/mel.cc", "src/mel_binding.cc", "src/buffer_pool.cc", "src/resample.cc", "src/resample_binding.cc", "src/image_resize.cc", "src/image_binding.cc", "src/engine_binding.cc", "src/engine/mapped_file.cc", "src/engine/thread_pool.cc", "src/engine/kernels.cc", "src/engine/thinker.cc", "src/encoder_binding.cc", "src/engine/encoder_kernels.cc", "src/engine/audio_encoder.cc", "src/engine/vision_encoder.cc", "src/code2wav_binding.cc", "src/engine/code2wav.cc", "src/engine/code2wav_kernels.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fno-math-errno", "-Wno-psabi"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno"]
      },
      "conditions": [
        ["<!(node has_libjpeg.cjs)==1", {
          "sources": ["src/jpeg_decode.cc"],
          "defines": ["OMNI_HAVE_LIBJPEG"],
          "libraries": ["-ljpeg"]
        }]
      ],
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "Optimization": 2 }
      }
    }
  ]
}
