# Unit tests of vigil-tray's model (no GTK): built when the tray is.
if(TARGET vigil_tray_model)
  vigil_unit_test(tray_model LIBS vigil_tray_model)
endif()
