" ftdetect/nnl.vim — .nnl files are nnl, the language of nnlc (editors/README.md).
autocmd BufRead,BufNewFile *.nnl setfiletype nnl
