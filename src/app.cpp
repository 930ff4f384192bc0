// placeholder: composition root
