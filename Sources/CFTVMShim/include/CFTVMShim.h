int ftvm_placeholder(void);
